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
}

variables {
  name               = "healthcare"
  key_description    = "healthcare volumes and secret key"
  secret_description = "HEALTHCARE_SECRET_KEY for healthcare"
}

run "a_rotating_key_and_an_empty_secret_under_it" {
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
    condition     = output.secret_key_arn == aws_secretsmanager_secret.secret_key.arn && output.kms_key_arn == aws_kms_key.data.arn
    error_message = "the outputs name the key and the secret"
  }
  assert {
    condition     = [for s in data.aws_iam_policy_document.kms.statement : s.sid] == ["AccountAdministersTheKey"]
    error_message = "the key policy is AWS's default: the account administers the key"
  }
}

run "a_bad_name_is_refused" {
  command = plan

  variables {
    name = "Bad Name"
  }

  expect_failures = [var.name]
}
