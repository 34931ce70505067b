# One EC2 instance in the account's default VPC (no NAT, subnets or peering to pay for or get
# wrong; a clinic's single server needs none), running the compose deployment from a git ref.

locals {
  ssh_enabled        = var.ssh_public_key != ""
  tls_enabled        = var.domain_name != ""
  public_ports       = local.tls_enabled ? [80, 443] : [var.app_port]
  data_mount         = "/var/lib/docker/volumes/healthcare_data/_data"
  data_volume_device = "/dev/sdf"
}

data "aws_ssm_parameter" "al2023_ami" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

data "aws_vpc" "default" {
  default = true
}

data "aws_subnets" "default" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default.id]
  }
  filter {
    name   = "default-for-az"
    values = ["true"]
  }
}

data "aws_subnet" "chosen" {
  id = sort(data.aws_subnets.default.ids)[0]
}

resource "aws_security_group" "service" {
  name        = "${var.name}-service"
  description = "healthcare: the service port for allowed_cidrs, SSH only from admin_cidr"
  vpc_id      = data.aws_vpc.default.id
}

resource "aws_vpc_security_group_ingress_rule" "service" {
  for_each = { for pair in setproduct(local.public_ports, var.allowed_cidrs) : "${pair[0]}-${pair[1]}" => pair }

  security_group_id = aws_security_group.service.id
  description       = "healthcare service from an allowed network"
  ip_protocol       = "tcp"
  from_port         = each.value[0]
  to_port           = each.value[0]
  cidr_ipv4         = each.value[1]
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  count = local.ssh_enabled ? 1 : 0

  security_group_id = aws_security_group.service.id
  description       = "SSH from the administrator's network only"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = var.admin_cidr

  lifecycle {
    precondition {
      condition     = var.admin_cidr != ""
      error_message = "ssh_public_key is set, so admin_cidr must name the network SSH is open to."
    }
  }
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.service.id
  description       = "HTTPS out: packages, images, the git repository, AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "http" {
  security_group_id = aws_security_group.service.id
  description       = "HTTP out: distribution package mirrors"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_key_pair" "admin" {
  count = local.ssh_enabled ? 1 : 0

  key_name   = "${var.name}-admin"
  public_key = var.ssh_public_key
}

# Who may assume each of the two roles: the instance, and the snapshot service.
data "aws_iam_policy_document" "assume" {
  for_each = { instance = "ec2.amazonaws.com", snapshots = "dlm.amazonaws.com" }

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [each.value]
    }
  }
}

resource "aws_iam_role" "instance" {
  name               = "${var.name}-instance"
  assume_role_policy = data.aws_iam_policy_document.assume["instance"].json
}

resource "aws_iam_role_policy_attachment" "ssm_core" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "read_secret" {
  statement {
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]
    resources = [aws_secretsmanager_secret.secret_key.arn]
  }
  statement {
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]
  }
}

resource "aws_iam_role_policy" "read_secret" {
  name   = "read-secret-key"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.read_secret.json
}

resource "aws_iam_instance_profile" "instance" {
  name = "${var.name}-instance"
  role = aws_iam_role.instance.name
}

data "aws_caller_identity" "current" {}

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
}

# One customer-managed key for everything that holds health data or its secret, so that every
# use of it is in CloudTrail and it can be revoked.
resource "aws_kms_key" "data" {
  description             = "${var.name} volumes and secret key"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

# The application's secret key: Terraform makes an empty secret, and the instance stores a
# random key in it at first boot (see secret_key in the bootstrap), so the key is never in user
# data, the plan or the state, and a re-apply does not rotate it.
resource "aws_secretsmanager_secret" "secret_key" {
  # checkov:skip=CKV2_AWS_57: rotating the key ends every browser session at once; it is rotated on purpose (docs/deploy-aws.md), not on a schedule
  name                    = "${var.name}/secret-key"
  description             = "HEALTHCARE_SECRET_KEY for ${var.name}, stored by the instance at first boot"
  kms_key_id              = aws_kms_key.data.arn
  recovery_window_in_days = 30
}

resource "aws_instance" "service" {
  ami                    = data.aws_ssm_parameter.al2023_ami.value
  instance_type          = var.instance_type
  subnet_id              = data.aws_subnet.chosen.id
  vpc_security_group_ids = [aws_security_group.service.id]
  iam_instance_profile   = aws_iam_instance_profile.instance.name
  key_name               = local.ssh_enabled ? aws_key_pair.admin[0].key_name : null
  monitoring             = true
  ebs_optimized          = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = 16
    encrypted             = true
    kms_key_id            = aws_kms_key.data.arn
    delete_on_termination = true
  }

  user_data = templatefile("${path.module}/cloud-init.sh.tftpl", {
    repository_url  = var.repository_url
    repository_ref  = var.repository_ref
    region          = var.region
    secret_id       = aws_secretsmanager_secret.secret_key.arn
    data_volume_id  = aws_ebs_volume.data.id
    data_mount      = local.data_mount
    app_port        = var.app_port
    bind_address    = local.tls_enabled ? "127.0.0.1" : "0.0.0.0"
    domain_name     = var.domain_name
    trusted_proxies = local.tls_enabled ? 1 : 0 # Caddy in front: believe its forwarded headers
    # High-availability mode only (deploy/aws/ha): the RDS database
    database_secret_arn = ""
    database_endpoint   = ""
  })
  user_data_replace_on_change = false

  tags = { Name = var.name }
}

resource "aws_ebs_volume" "data" {
  availability_zone = data.aws_subnet.chosen.availability_zone
  size              = var.data_volume_size
  type              = "gp3"
  encrypted         = true
  kms_key_id        = aws_kms_key.data.arn

  tags = {
    Name     = "${var.name}-data"
    Snapshot = var.name
  }
}

resource "aws_volume_attachment" "data" {
  device_name = local.data_volume_device
  volume_id   = aws_ebs_volume.data.id
  instance_id = aws_instance.service.id
}

resource "aws_iam_role" "dlm" {
  name               = "${var.name}-snapshots"
  assume_role_policy = data.aws_iam_policy_document.assume["snapshots"].json
}

resource "aws_iam_role_policy_attachment" "dlm" {
  role       = aws_iam_role.dlm.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"
}

resource "aws_dlm_lifecycle_policy" "daily" {
  description        = "${var.name} daily snapshots of the data volume"
  execution_role_arn = aws_iam_role.dlm.arn
  state              = "ENABLED"

  policy_details {
    resource_types = ["VOLUME"]
    target_tags    = { Snapshot = var.name }

    schedule {
      name      = "daily"
      copy_tags = true

      create_rule {
        interval      = 24
        interval_unit = "HOURS"
        times         = ["03:00"]
      }

      retain_rule {
        count = var.snapshot_retention
      }
    }
  }
}
