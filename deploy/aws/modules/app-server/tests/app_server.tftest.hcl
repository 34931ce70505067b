# Offline: every AWS resource and data source is mocked.
mock_provider "aws" {
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_iam_instance_profile" {
    defaults = { arn = "arn:aws:iam::123456789012:instance-profile/mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/healthcare/audit-checkpoints" }
  }
  override_data {
    target = data.aws_ssm_parameter.al2023_ami
    values = { insecure_value = "ami-0123456789abcdef0" }
  }
  override_data {
    target = data.aws_iam_policy_document.instance_assume
    values = { json = "{}" }
  }
  override_data {
    target = data.aws_iam_policy_document.read_secrets
    values = { json = "{}" }
  }
  override_data {
    target = data.aws_iam_policy_document.ship_audit_checkpoints
    values = { json = "{}" }
  }
}

variables {
  name            = "healthcare-instance"
  region          = "eu-west-1"
  kms_key_arn     = "arn:aws:kms:eu-west-1:123456789012:key/mock"
  secret_key_arn  = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:healthcare/secret-key-AbCdEf"
  audit_key_arn   = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:healthcare/audit-key-GhIjKl"
  repository_url  = "https://git.example.org/clinic/healthcare.git"
  repository_ref  = "v0.1.0"
  app_port        = 9000
  trusted_proxies = 0

  audit_log_group_name = "/healthcare/audit-checkpoints"
}

run "a_role_for_session_manager_and_its_own_secrets" {
  command = apply

  assert {
    condition     = aws_iam_instance_profile.instance.role == aws_iam_role.instance.name && aws_iam_role.instance.name == "healthcare-instance"
    error_message = "the instance profile carries the instance role"
  }
  assert {
    condition     = aws_iam_role_policy_attachment.ssm_core.role == aws_iam_role.instance.name && endswith(aws_iam_role_policy_attachment.ssm_core.policy_arn, "/AmazonSSMManagedInstanceCore")
    error_message = "shell access goes through SSM Session Manager"
  }
  assert {
    condition = [for s in data.aws_iam_policy_document.read_secrets.statement : { actions = s.actions, resources = s.resources }] == [
      { actions = toset(["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]), resources = toset([var.secret_key_arn, var.audit_key_arn]) },
      { actions = toset(["kms:Decrypt", "kms:GenerateDataKey"]), resources = toset([var.kms_key_arn]) },
    ]
    error_message = "the server reads and fills in its secret key and audit key, under the key, and nothing else"
  }
  assert {
    condition     = strcontains(output.user_data, "AUDIT_KEY_ID='${var.audit_key_arn}'") && strcontains(output.user_data, "HEALTHCARE_AUDIT_KEY=$audit\n")
    error_message = "the bootstrap reads the audit key by its secret's name at boot into HEALTHCARE_AUDIT_KEY; its value is never in user data"
  }
  assert {
    condition     = aws_iam_role_policy.read_secrets.role == aws_iam_role.instance.id && aws_iam_role_policy.read_secrets.name == "read-secrets"
    error_message = "the secrets policy belongs to the instance role"
  }
  assert {
    condition     = strcontains(output.user_data, "BIND_ADDRESS='0.0.0.0'") && strcontains(output.user_data, "TRUSTED_PROXIES='0'") && strcontains(output.user_data, "DATABASE_SECRET_ARN=''")
    error_message = "without a domain or a database: the app port published, no forwarded header believed, SQLite"
  }
  assert {
    condition     = output.ami_id == "ami-0123456789abcdef0"
    error_message = "the AMI comes from the public SSM parameter"
  }
}

run "https_on_the_server_and_a_database" {
  command = apply

  variables {
    domain_name     = "records.clinic.example"
    trusted_proxies = 1
    database = {
      endpoint   = "healthcare-db.mock.eu-west-1.rds.amazonaws.com:5432"
      secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-mock"
    }
  }

  assert {
    condition     = strcontains(output.user_data, "BIND_ADDRESS='127.0.0.1'") && strcontains(output.user_data, "DOMAIN_NAME='records.clinic.example'")
    error_message = "with a domain Caddy terminates HTTPS and the app port stays on the server"
  }
  assert {
    condition     = strcontains(output.user_data, "DATABASE_ENDPOINT='healthcare-db.mock.eu-west-1.rds.amazonaws.com:5432'") && strcontains(output.user_data, "DATABASE_SECRET_ARN='${var.database.secret_arn}'")
    error_message = "the server finds the database and the name of its secret in user data"
  }
  assert {
    condition = [for s in data.aws_iam_policy_document.read_secrets.statement : { actions = s.actions, resources = s.resources }] == [
      { actions = toset(["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]), resources = toset([var.secret_key_arn, var.audit_key_arn]) },
      { actions = toset(["secretsmanager:GetSecretValue"]), resources = toset([var.database.secret_arn]) },
      { actions = toset(["kms:Decrypt", "kms:GenerateDataKey"]), resources = toset([var.kms_key_arn]) },
    ]
    error_message = "the server may read the database's secret too, and not change it"
  }
}

run "audit_checkpoints_go_to_a_log_group_the_server_cannot_delete_or_shorten" {
  command = apply

  assert {
    condition     = aws_cloudwatch_log_group.audit_checkpoints[0].name == "/healthcare/audit-checkpoints" && aws_cloudwatch_log_group.audit_checkpoints[0].retention_in_days == 400 && aws_cloudwatch_log_group.audit_checkpoints[0].kms_key_id == var.kms_key_arn
    error_message = "the log group keeps the checkpoints 400 days by default, encrypted with the customer-managed key"
  }
  assert {
    condition     = aws_cloudwatch_log_group.audit_checkpoints[0].skip_destroy
    error_message = "destroying the deployment or turning shipping off leaves the shipped checkpoints in place"
  }
  assert {
    condition = [for s in data.aws_iam_policy_document.ship_audit_checkpoints[0].statement : { actions = s.actions, resources = s.resources } if s.effect == "Allow"] == [{
      actions   = toset(["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"])
      resources = toset([aws_cloudwatch_log_group.audit_checkpoints[0].arn, "${aws_cloudwatch_log_group.audit_checkpoints[0].arn}:*"])
    }]
    error_message = "the server may only create its stream, append to it and describe the group's streams"
  }
  assert {
    condition     = !anytrue([for s in data.aws_iam_policy_document.ship_audit_checkpoints[0].statement : anytrue([for a in s.actions : can(regex("Delete|Retention", a))]) if s.effect == "Allow"])
    error_message = "no delete or retention action is allowed"
  }
  assert {
    condition = anytrue([for s in data.aws_iam_policy_document.ship_audit_checkpoints[0].statement :
      s.effect == "Deny" && s.resources == toset(["*"])
    && s.actions == toset(["logs:DeleteLogGroup", "logs:DeleteLogStream", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy"])])
    error_message = "deleting or shortening any log group is explicitly denied to the server"
  }
  assert {
    condition     = aws_iam_role_policy.ship_audit_checkpoints[0].role == aws_iam_role.instance.id
    error_message = "the policy belongs to the instance role"
  }
  assert {
    condition = strcontains(output.user_data, jsonencode({
      file_path                = "/var/lib/docker/volumes/healthcare_audit/_data/checkpoints.jsonl"
      log_group_name           = "/healthcare/audit-checkpoints"
      log_stream_name          = "{instance_id}"
      multi_line_start_pattern = "^"
    }))
    error_message = "the agent ships compose's checkpoint file to the log group, one event per line"
  }
  assert {
    condition     = !strcontains(output.user_data, "retention_in_days")
    error_message = "the agent never sets the retention (it may not)"
  }
  assert {
    condition     = output.audit_log_group.name == "/healthcare/audit-checkpoints"
    error_message = "the output names the log group"
  }
}

run "nothing_is_shipped_without_a_log_group" {
  command = apply

  variables {
    audit_log_group_name = ""
  }

  assert {
    condition     = length(aws_cloudwatch_log_group.audit_checkpoints) == 0 && length(aws_iam_role_policy.ship_audit_checkpoints) == 0 && output.audit_log_group == null
    error_message = "no log group and no policy"
  }
  assert {
    condition     = strcontains(output.user_data, "AUDIT_AGENT_CONFIG=''")
    error_message = "no agent configuration in user data"
  }
}

run "bad_values_are_refused" {
  command = plan

  variables {
    name                     = "Bad Name"
    app_port                 = 80
    trusted_proxies          = 2
    audit_log_group_name     = "audit checkpoints"
    audit_log_retention_days = 30
  }

  expect_failures = [var.name, var.app_port, var.trusted_proxies, var.audit_log_group_name, var.audit_log_retention_days]
}
