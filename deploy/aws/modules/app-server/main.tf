# What every app server runs with, on one instance or in an Auto Scaling group: Amazon Linux
# 2023, an instance role (SSM Session Manager, the secrets it reads), the bootstrap, and the
# write-once copy of its audit checkpoints (audit-log.tf).

locals {
  # Where the bootstrap mounts the data volume and gives it to the app's user; compose serves
  # /data from this folder (HEALTHCARE_DATA_VOLUME). Not a named volume's own folder: Docker,
  # creating the volume, would give the mounted file system to root.
  data_mount = "/srv/healthcare/data"

  user_data = templatefile("${path.module}/cloud-init.sh.tftpl", {
    repository_url      = var.repository_url
    repository_ref      = var.repository_ref
    region              = var.region
    secret_id           = var.secret_key_arn
    audit_key_id        = var.audit_key_arn
    data_volume_id      = var.data_volume_id
    data_mount          = local.data_mount
    app_port            = var.app_port
    bind_address        = var.domain_name != "" ? "127.0.0.1" : "0.0.0.0"
    domain_name         = var.domain_name
    trusted_proxies     = var.trusted_proxies
    database_secret_arn = var.database == null ? "" : var.database.secret_arn
    database_endpoint   = var.database == null ? "" : var.database.endpoint
    audit_agent_config  = local.audit_agent_config
  })
}

data "aws_ssm_parameter" "al2023_ami" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

data "aws_iam_policy_document" "instance_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name               = var.name
  assume_role_policy = data.aws_iam_policy_document.instance_assume.json
}

resource "aws_iam_role_policy_attachment" "ssm_core" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

# The server reads the secrets it needs at boot (and stores the first keys), nothing else.
data "aws_iam_policy_document" "read_secrets" {
  statement {
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]
    resources = [var.secret_key_arn, var.audit_key_arn]
  }
  dynamic "statement" {
    for_each = var.database == null ? [] : [var.database.secret_arn]

    content {
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }
  statement {
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "read_secrets" {
  name   = var.secrets_policy_name
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.read_secrets.json
}

resource "aws_iam_instance_profile" "instance" {
  name = var.name
  role = aws_iam_role.instance.name
}
