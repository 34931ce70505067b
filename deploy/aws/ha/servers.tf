# The app servers: a launch template (the same bootstrap as the single instance, without its
# data volume) and an Auto Scaling group over every zone, health-checked by the load balancer.

locals {
  audit_log_group = var.ship_audit_checkpoints ? "/${var.name}/audit-checkpoints" : ""
}

module "server" {
  source = "../modules/app-server"

  name            = "${var.name}-app"
  region          = var.region
  kms_key_arn     = module.keys.kms_key_arn
  secret_key_arn  = module.keys.secret_key_arn
  audit_key_arn   = module.keys.audit_key_arn
  repository_url  = var.repository_url
  repository_ref  = var.repository_ref
  app_port        = var.app_port
  trusted_proxies = 1 # HTTPS ends at the load balancer, whose X-Forwarded-For and -Proto are believed
  database = {
    endpoint   = aws_db_instance.db.endpoint
    secret_arn = aws_db_instance.db.master_user_secret[0].secret_arn
  }

  audit_log_group_name     = local.audit_log_group
  audit_log_retention_days = var.audit_log_retention_days
}

resource "aws_launch_template" "app" {
  name_prefix            = "${var.name}-app-"
  image_id               = module.server.ami_id
  instance_type          = var.instance_type
  vpc_security_group_ids = [aws_security_group.app.id]
  ebs_optimized          = true
  update_default_version = true

  iam_instance_profile {
    arn = module.server.instance_profile_arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_type           = "gp3"
      volume_size           = 16
      encrypted             = true
      kms_key_id            = module.keys.kms_key_arn
      delete_on_termination = true
    }
  }

  user_data = base64encode(module.server.user_data)

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-app" }
  }
}

resource "aws_autoscaling_group" "app" {
  name                      = "${var.name}-app"
  min_size                  = var.instances.min
  desired_capacity          = var.instances.desired
  max_size                  = var.instances.max
  vpc_zone_identifier       = local.subnet_ids
  target_group_arns         = [aws_lb_target_group.app.arn]
  health_check_type         = "ELB"
  health_check_grace_period = 900 # the first boot builds the image
  default_instance_warmup   = 300

  launch_template {
    id      = aws_launch_template.app.id
    version = aws_launch_template.app.latest_version
  }

  # A new launch template (a new repository_ref) replaces the servers one at a time, each new
  # one healthy behind the load balancer before an old one is drained and stopped.
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 100
      max_healthy_percentage = 200
    }
  }

  tag {
    key                 = "Name"
    value               = "${var.name}-app"
    propagate_at_launch = true
  }
}
