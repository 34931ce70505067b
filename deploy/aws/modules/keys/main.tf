# The deployment's keys: one customer-managed KMS key for everything that holds health data or
# a secret (every use of it is in CloudTrail and it can be revoked), and under it, in Secrets
# Manager, the application's secret key and the audit trail's HMAC key.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  log_group_arns = [
    for name in var.log_group_names :
    "arn:aws:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:${name}"
  ]
}

data "aws_iam_policy_document" "kms" {
  # checkov:skip=CKV_AWS_111: a key policy's "*" resource means this one key; this is AWS's default key policy, which delegates access to IAM
  # checkov:skip=CKV_AWS_356: as above, the resource of a key policy statement is always the key it is attached to
  # checkov:skip=CKV_AWS_109: as above; without the account's administration statement the key could become unmanageable
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  # CloudWatch Logs may use the key for the named log groups only.
  dynamic "statement" {
    for_each = length(local.log_group_arns) > 0 ? [local.log_group_arns] : []

    content {
      sid       = "CloudWatchLogsEncryptsTheNamedGroups"
      actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
      resources = ["*"]
      principals {
        type        = "Service"
        identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
      }
      condition {
        test     = "ArnEquals"
        variable = "kms:EncryptionContext:aws:logs:arn"
        values   = statement.value
      }
    }
  }
}

resource "aws_kms_key" "data" {
  description             = var.key_description
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

# Terraform makes the secret empty, and the first server to boot stores a random key in it (see
# secret_key in the bootstrap): the key is never in user data, the plan or the state, and a
# re-apply does not rotate it.
resource "aws_secretsmanager_secret" "secret_key" {
  # checkov:skip=CKV2_AWS_57: rotating the key ends every browser session at once; it is rotated on purpose (docs/deploy-aws.md), not on a schedule
  name                    = "${var.name}/secret-key"
  description             = var.secret_description
  kms_key_id              = aws_kms_key.data.arn
  recovery_window_in_days = 30
}

# The audit trail's HMAC key (HEALTHCARE_AUDIT_KEY), made the same way: empty here, filled in by
# the first server to boot (see audit_key in the bootstrap), read by every server, so that all
# of them extend and check one chain. It is in neither the database nor its backups.
resource "aws_secretsmanager_secret" "audit_key" {
  # checkov:skip=CKV2_AWS_57: a new audit key cannot extend the chain keyed with the old one (the service refuses to write audit rows); it is never rotated
  name                    = "${var.name}/audit-key"
  description             = "HEALTHCARE_AUDIT_KEY for ${var.name}: the audit trail's HMAC key, stored by the first server to boot"
  kms_key_id              = aws_kms_key.data.arn
  recovery_window_in_days = 30
}
