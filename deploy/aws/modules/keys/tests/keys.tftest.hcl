# Offline: every AWS resource and data source is mocked.
mock_provider "aws" {
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/mock" }
  }
  override_data {
    target = data.aws_iam_policy_document.kms
    values = { json = "{}" }
  }
  override_data {
    target = data.aws_caller_identity.current
    values = { account_id = "123456789012" }
  }
  override_data {
    target = data.aws_region.current
    values = { name = "eu-west-1" }
  }
}

variables {
  name               = "healthcare"
  key_description    = "healthcare volumes and secret key"
  secret_description = "HEALTHCARE_SECRET_KEY for healthcare"
}

run "a_rotating_key_and_empty_secrets_under_it" {
  command = apply

  assert {
    condition     = aws_kms_key.data.enable_key_rotation && aws_kms_key.data.deletion_window_in_days == 30
    error_message = "the key rotates, and a deleted key can be recovered for 30 days"
  }
  assert {
    condition     = aws_secretsmanager_secret.secret_key.kms_key_id == aws_kms_key.data.arn && aws_secretsmanager_secret.secret_key.name == "healthcare/secret-key"
    error_message = "the secret key is kept under the customer-managed key"
  }
  assert {
    condition     = aws_secretsmanager_secret.audit_key.kms_key_id == aws_kms_key.data.arn && aws_secretsmanager_secret.audit_key.name == "healthcare/audit-key"
    error_message = "the audit key has a secret of its own, under the customer-managed key"
  }
  assert {
    condition     = aws_secretsmanager_secret.audit_key.arn != aws_secretsmanager_secret.secret_key.arn
    error_message = "the audit key and the secret key are two secrets"
  }
  assert {
    condition     = output.secret_key_arn == aws_secretsmanager_secret.secret_key.arn && output.audit_key_arn == aws_secretsmanager_secret.audit_key.arn && output.kms_key_arn == aws_kms_key.data.arn
    error_message = "the outputs name the key and the secrets (their ARNs, never a value)"
  }
  assert {
    condition     = [for s in data.aws_iam_policy_document.kms.statement : s.sid] == ["AccountAdministersTheKey"]
    error_message = "without log groups the key policy is AWS's default: the account administers the key"
  }
}

run "cloudwatch_logs_may_use_the_key_for_the_named_groups_only" {
  command = plan

  variables {
    log_group_names = ["/healthcare/audit-checkpoints"]
  }

  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.kms.statement : alltrue([
        for c in s.condition : c.test == "ArnEquals" && c.variable == "kms:EncryptionContext:aws:logs:arn"
        && toset(c.values) == toset(["arn:aws:logs:eu-west-1:123456789012:log-group:/healthcare/audit-checkpoints"])
      ]) && length(s.condition) == 1 if s.sid == "CloudWatchLogsEncryptsTheNamedGroups"
    ]) && length(data.aws_iam_policy_document.kms.statement) == 2
    error_message = "the logs service may use the key only in the encryption context of the named group"
  }
  assert {
    condition     = anytrue([for s in data.aws_iam_policy_document.kms.statement : contains(flatten([for p in s.principals : p.identifiers]), "logs.eu-west-1.amazonaws.com")])
    error_message = "the statement names the region's CloudWatch Logs service"
  }
}

run "a_bad_name_is_refused" {
  command = plan

  variables {
    name = "Bad Name"
  }

  expect_failures = [var.name]
}
