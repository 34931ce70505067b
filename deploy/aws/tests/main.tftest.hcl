# Offline: every AWS resource and data source is mocked.
mock_provider "aws" {
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:healthcare/secret-key-AbCdEf" }
  }
  override_resource {
    target = module.keys.aws_secretsmanager_secret.audit_key
    values = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:healthcare/audit-key-GhIjKl" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/healthcare/audit-checkpoints" }
  }
  mock_resource "aws_ebs_volume" {
    defaults = { id = "vol-0123456789abcdef0" }
  }
  mock_resource "aws_instance" {
    defaults = { id = "i-0123456789abcdef0", public_ip = "192.0.2.10" }
  }
  override_data {
    target = module.server.data.aws_ssm_parameter.al2023_ami
    values = { insecure_value = "ami-0123456789abcdef0" }
  }
  override_data {
    target = module.network.data.aws_subnets.default
    values = { ids = ["subnet-0aaa", "subnet-0bbb"] }
  }
  override_data {
    target = data.aws_subnet.chosen
    values = { id = "subnet-0aaa", availability_zone = "eu-west-1a" }
  }
  override_data {
    target = data.aws_iam_policy_document.dlm_assume
    values = { json = "{}" }
  }
  override_data {
    target = module.server.data.aws_iam_policy_document.instance_assume
    values = { json = "{}" }
  }
  override_data {
    target = module.server.data.aws_iam_policy_document.read_secrets
    values = { json = "{}" }
  }
  override_data {
    target = module.server.data.aws_iam_policy_document.ship_audit_checkpoints
    values = { json = "{}" }
  }
  override_data {
    target = module.keys.data.aws_iam_policy_document.kms
    values = { json = "{}" }
  }
}

variables {
  allowed_cidrs  = ["203.0.113.0/24"]
  repository_url = "https://git.example.org/clinic/healthcare.git"
  domain_name    = "records.clinic.example"
}

run "defaults_are_secure" {
  # apply (against the mocks) so that user data, which names the data volume, is known
  command = apply

  assert {
    condition     = aws_instance.service.metadata_options[0].http_tokens == "required"
    error_message = "IMDSv2 must be required"
  }
  assert {
    condition     = aws_instance.service.root_block_device[0].encrypted
    error_message = "the root volume must be encrypted"
  }
  assert {
    condition     = aws_ebs_volume.data.encrypted && aws_ebs_volume.data.kms_key_id == module.keys.kms_key_arn
    error_message = "the data volume must be encrypted with the customer-managed key"
  }
  assert {
    condition     = aws_instance.service.root_block_device[0].kms_key_id == module.keys.kms_key_arn
    error_message = "the root volume must be encrypted with the customer-managed key"
  }
  assert {
    condition     = aws_instance.service.monitoring
    error_message = "detailed monitoring must be on"
  }
  assert {
    condition     = aws_instance.service.instance_type == "t3.micro"
    error_message = "t3.micro is the default size"
  }
  assert {
    condition     = aws_instance.service.ami == "ami-0123456789abcdef0"
    error_message = "the AMI comes from the public SSM parameter"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.ssh) == 0 && length(aws_key_pair.admin) == 0
    error_message = "without ssh_public_key there is no SSH at all"
  }
  assert {
    condition     = toset(keys(aws_vpc_security_group_ingress_rule.service)) == toset(["80-203.0.113.0/24", "443-203.0.113.0/24"])
    error_message = "HTTPS by default: only 80 (redirect, certificates) and 443, only from allowed_cidrs"
  }
  assert {
    condition     = aws_dlm_lifecycle_policy.daily.policy_details[0].schedule[0].retain_rule[0].count == 14
    error_message = "daily snapshots are kept 14 times by default"
  }
  assert {
    condition     = aws_dlm_lifecycle_policy.daily.policy_details[0].target_tags["Snapshot"] == aws_ebs_volume.data.tags["Snapshot"]
    error_message = "the snapshot policy must target the data volume"
  }
  assert {
    condition     = strcontains(aws_instance.service.user_data, "docker compose --project-directory") && strcontains(aws_instance.service.user_data, "up -d")
    error_message = "user data must start the compose deployment"
  }
  assert {
    condition     = strcontains(aws_instance.service.user_data, "SECRET_ID='${module.keys.secret_key_arn}'")
    error_message = "the instance reads the secret key by its name at boot; it is never in user data"
  }
  assert {
    condition     = strcontains(aws_instance.service.user_data, "DATABASE_SECRET_ARN=''") && strcontains(aws_instance.service.user_data, "DATA_VOLUME_ID='vol-0123456789abcdef0'")
    error_message = "single-instance mode keeps SQLite on the data volume"
  }
  assert {
    condition     = strcontains(aws_instance.service.user_data, "DATA_MOUNT='/srv/healthcare/data'") && !strcontains(aws_instance.service.user_data, "/var/lib/docker/volumes/healthcare_data")
    error_message = "the data volume is mounted on a folder of its own, which compose binds as /data, never on the named volume's folder (Docker gives that to root)"
  }
}

run "plain_http_only_when_asked_for" {
  command = apply

  variables {
    domain_name      = ""
    allow_plain_http = true
  }

  assert {
    condition     = keys(aws_vpc_security_group_ingress_rule.service) == ["9000-203.0.113.0/24"]
    error_message = "only the app port, only from allowed_cidrs"
  }
  assert {
    condition     = strcontains(aws_instance.service.user_data, "HEALTHCARE_BIND=$BIND_ADDRESS") && strcontains(aws_instance.service.user_data, "BIND_ADDRESS='0.0.0.0'")
    error_message = "without TLS the app port is published"
  }
  assert {
    condition     = strcontains(aws_instance.service.user_data, "TRUSTED_PROXIES='0'")
    error_message = "without a proxy no forwarded header is believed"
  }
}

run "plain_http_is_refused_by_default" {
  command = plan

  variables {
    domain_name = ""
  }

  expect_failures = [var.allow_plain_http]
}

run "ssh_from_admin_cidr_only" {
  command = plan

  variables {
    ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyMaterialOnlyForTests admin@clinic"
    admin_cidr     = "198.51.100.7/32"
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.ssh[0].cidr_ipv4 == "198.51.100.7/32" && aws_vpc_security_group_ingress_rule.ssh[0].from_port == 22
    error_message = "SSH must be open to admin_cidr only"
  }
  assert {
    condition     = length(aws_key_pair.admin) == 1
    error_message = "the key pair comes from the operator's public key"
  }
}

run "tls_opens_only_80_and_443" {
  command = apply

  variables {
    domain_name   = "records.clinic.example"
    allowed_cidrs = ["0.0.0.0/0"]
  }

  assert {
    condition     = toset(keys(aws_vpc_security_group_ingress_rule.service)) == toset(["80-0.0.0.0/0", "443-0.0.0.0/0"])
    error_message = "with a domain name only 80 and 443 are public"
  }
  assert {
    condition     = strcontains(aws_instance.service.user_data, "BIND_ADDRESS='127.0.0.1'")
    error_message = "with TLS the app port stays on the instance"
  }
  assert {
    condition     = strcontains(aws_instance.service.user_data, "DOMAIN_NAME='records.clinic.example'") && strcontains(aws_instance.service.user_data, "--profile tls")
    error_message = "with a domain name the bootstrap starts the Caddy profile for it"
  }
  assert {
    condition     = strcontains(aws_instance.service.user_data, "TRUSTED_PROXIES='1'")
    error_message = "behind Caddy the app believes one proxy's forwarded headers"
  }
}

run "ssh_open_to_the_world_is_refused" {
  command = plan

  variables {
    ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyMaterialOnlyForTests admin@clinic"
    admin_cidr     = "0.0.0.0/0"
  }

  expect_failures = [var.admin_cidr]
}

run "a_private_key_is_refused" {
  command = plan

  variables {
    ssh_public_key = "-----BEGIN OPENSSH PRIVATE KEY-----"
  }

  expect_failures = [var.ssh_public_key]
}

run "bad_cidrs_are_refused" {
  command = plan

  variables {
    allowed_cidrs = ["not-a-cidr"]
  }

  expect_failures = [var.allowed_cidrs]
}

run "no_allowed_cidrs_is_refused" {
  command = plan

  variables {
    allowed_cidrs = []
  }

  expect_failures = [var.allowed_cidrs]
}

run "audit_checkpoints_shipped_by_default" {
  command = apply

  assert {
    condition     = output.audit_log_group_name == "/healthcare/audit-checkpoints" && module.server.audit_log_group.retention_in_days == 400
    error_message = "the checkpoints go to their own log group, kept 400 days by default"
  }
  assert {
    condition     = module.server.audit_log_group.kms_key_id == module.keys.kms_key_arn
    error_message = "the shipped checkpoints are encrypted with the deployment's customer-managed key"
  }
  assert {
    condition     = strcontains(aws_instance.service.user_data, "\"file_path\":\"/var/lib/docker/volumes/healthcare_audit/_data/checkpoints.jsonl\",\"log_group_name\":\"/healthcare/audit-checkpoints\"")
    error_message = "the bootstrap configures the CloudWatch agent to ship compose's checkpoint file to that group"
  }
}

run "audit_checkpoints_not_shipped_when_turned_off" {
  command = apply

  variables {
    ship_audit_checkpoints = false
  }

  assert {
    condition     = output.audit_log_group_name == null && module.server.audit_log_group == null
    error_message = "no log group"
  }
  assert {
    condition     = strcontains(aws_instance.service.user_data, "AUDIT_AGENT_CONFIG=''")
    error_message = "no agent configuration"
  }
}

run "bad_sizes_are_refused" {
  command = plan

  variables {
    instance_type      = "huge"
    snapshot_retention = 0
    data_volume_size   = 0
    app_port           = 80
    name               = "Bad Name"
  }

  expect_failures = [var.instance_type, var.snapshot_retention, var.data_volume_size, var.app_port, var.name]
}

run "a_malformed_admin_cidr_is_refused" {
  command = plan

  variables {
    ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyMaterialOnlyForTests admin@clinic"
    admin_cidr     = "my-office"
  }

  expect_failures = [var.admin_cidr]
}

run "ssh_without_admin_cidr_is_refused" {
  command = plan

  variables {
    ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyMaterialOnlyForTests admin@clinic"
  }

  expect_failures = [aws_vpc_security_group_ingress_rule.ssh]
}

run "the_audit_key_comes_from_its_own_secret" {
  command = apply

  assert {
    condition     = strcontains(aws_instance.service.user_data, "AUDIT_KEY_ID='${module.keys.audit_key_arn}'") && module.keys.audit_key_arn != module.keys.secret_key_arn
    error_message = "the instance reads the audit key from its own secret, by name; its value is never in user data"
  }
  assert {
    condition     = strcontains(aws_instance.service.user_data, "HEALTHCARE_AUDIT_KEY=$audit\n")
    error_message = "the bootstrap puts the audit key into the app's environment (.env)"
  }
}
