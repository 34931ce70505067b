# One EC2 instance in the account's default VPC (no NAT, subnets or peering to pay for or get
# wrong; a clinic's single server needs none), running the compose deployment from a git ref.

locals {
  ssh_enabled        = var.ssh_public_key != ""
  tls_enabled        = var.domain_name != ""
  public_ports       = local.tls_enabled ? [80, 443] : [var.app_port]
  data_volume_device = "/dev/sdf"
  audit_log_group    = var.ship_audit_checkpoints ? "/${var.name}/audit-checkpoints" : ""
}

module "network" {
  source = "./modules/default-vpc"
}

data "aws_subnet" "chosen" {
  id = module.network.subnet_ids[0]
}

module "keys" {
  source = "./modules/keys"

  name               = var.name
  key_description    = "${var.name} volumes and secret key"
  secret_description = "HEALTHCARE_SECRET_KEY for ${var.name}, stored by the instance at first boot"
  log_group_names    = compact([local.audit_log_group])
}

module "server" {
  source = "./modules/app-server"

  name                = "${var.name}-instance"
  secrets_policy_name = "read-secret-key" # its name from before the module: a new name replaces it
  region              = var.region
  kms_key_arn         = module.keys.kms_key_arn
  secret_key_arn      = module.keys.secret_key_arn
  audit_key_arn       = module.keys.audit_key_arn
  data_volume_id      = aws_ebs_volume.data.id
  repository_url      = var.repository_url
  repository_ref      = var.repository_ref
  app_port            = var.app_port
  domain_name         = var.domain_name
  trusted_proxies     = local.tls_enabled ? 1 : 0 # Caddy in front: believe its forwarded headers

  audit_log_group_name     = local.audit_log_group
  audit_log_retention_days = var.audit_log_retention_days
}

resource "aws_security_group" "service" {
  name        = "${var.name}-service"
  description = "healthcare: the service port for allowed_cidrs, SSH only from admin_cidr"
  vpc_id      = module.network.vpc_id
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

resource "aws_instance" "service" {
  ami                    = module.server.ami_id
  instance_type          = var.instance_type
  subnet_id              = data.aws_subnet.chosen.id
  vpc_security_group_ids = [aws_security_group.service.id]
  iam_instance_profile   = module.server.instance_profile_name
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
    kms_key_id            = module.keys.kms_key_arn
    delete_on_termination = true
  }

  user_data                   = module.server.user_data
  user_data_replace_on_change = false

  tags = { Name = var.name }
}

resource "aws_ebs_volume" "data" {
  availability_zone = data.aws_subnet.chosen.availability_zone
  size              = var.data_volume_size
  type              = "gp3"
  encrypted         = true
  kms_key_id        = module.keys.kms_key_arn

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

data "aws_iam_policy_document" "dlm_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["dlm.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "dlm" {
  name               = "${var.name}-snapshots"
  assume_role_policy = data.aws_iam_policy_document.dlm_assume.json
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
