# The write-once copy of the audit checkpoints (docs/audit-threat-model.md): the CloudWatch agent
# ships each line the app appends to its checkpoint file, unchanged, as one event to a log group
# that this server may add to but neither delete from nor shorten, even as root on it.

locals {
  ship_audit_checkpoints = var.audit_log_group_name != ""

  # compose.yaml's `audit` volume, where the app appends HEALTHCARE_AUDIT_CHECKPOINTS
  # (/audit/checkpoints.jsonl), as Docker keeps it on the host.
  audit_checkpoints = "/var/lib/docker/volumes/healthcare_audit/_data/checkpoints.jsonl"

  audit_agent_config = !local.ship_audit_checkpoints ? "" : jsonencode({
    # The checkpoint file is the app user's, mode 0600.
    agent = { run_as_user = "root" }
    logs = {
      logs_collected = {
        files = {
          collect_list = [{
            file_path       = local.audit_checkpoints
            log_group_name  = var.audit_log_group_name
            log_stream_name = "{instance_id}"
            # Every line starts an event: one checkpoint, one event, exactly as written. No
            # retention_in_days: the agent would set it, which the server may not.
            multi_line_start_pattern = "^"
          }]
        }
      }
    }
  })
}

resource "aws_cloudwatch_log_group" "audit_checkpoints" {
  count = local.ship_audit_checkpoints ? 1 : 0

  name              = var.audit_log_group_name
  retention_in_days = var.audit_log_retention_days
  kms_key_id        = var.kms_key_arn
  # Neither `terraform destroy` nor turning shipping off deletes the checkpoints shipped so far.
  skip_destroy = true
}

data "aws_iam_policy_document" "ship_audit_checkpoints" {
  count = local.ship_audit_checkpoints ? 1 : 0

  statement {
    sid       = "AppendCheckpoints"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [aws_cloudwatch_log_group.audit_checkpoints[0].arn, "${aws_cloudwatch_log_group.audit_checkpoints[0].arn}:*"]
  }

  # Whatever else is ever attached to the role (AWS's CloudWatchAgentServerPolicy allows
  # logs:PutRetentionPolicy, for one), the server cannot remove or shorten the trail.
  statement {
    sid       = "NeverDeleteOrShorten"
    effect    = "Deny"
    actions   = ["logs:DeleteLogGroup", "logs:DeleteLogStream", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "ship_audit_checkpoints" {
  count = local.ship_audit_checkpoints ? 1 : 0

  name   = "ship-audit-checkpoints"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.ship_audit_checkpoints[0].json
}
