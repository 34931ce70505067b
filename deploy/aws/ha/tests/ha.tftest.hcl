# Offline: every AWS resource and data source is mocked.
mock_provider "aws" {
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_iam_instance_profile" {
    defaults = { arn = "arn:aws:iam::123456789012:instance-profile/mock" }
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
  mock_resource "aws_db_instance" {
    defaults = {
      endpoint           = "healthcare-db.mock.eu-west-1.rds.amazonaws.com:5432"
      master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-mock", kms_key_id = "mock", secret_status = "active" }]
    }
  }
  mock_resource "aws_lb" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/mock", dns_name = "healthcare-alb-1.eu-west-1.elb.amazonaws.com", zone_id = "Z32O12XQLNTSW2" }
  }
  mock_resource "aws_lb_target_group" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/healthcare-app/mock" }
  }
  mock_resource "aws_acm_certificate" {
    defaults = {
      arn                       = "arn:aws:acm:eu-west-1:123456789012:certificate/mock"
      domain_validation_options = [{ domain_name = "records.clinic.example", resource_record_name = "_x.records.clinic.example.", resource_record_type = "CNAME", resource_record_value = "_y.acm-validations.aws." }]
    }
  }
  mock_resource "aws_acm_certificate_validation" {
    defaults = { certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/mock" }
  }
  mock_resource "aws_launch_template" {
    defaults = { id = "lt-0123456789abcdef0", latest_version = 1 }
  }
  override_data {
    target = module.server.data.aws_ssm_parameter.al2023_ami
    values = { insecure_value = "ami-0123456789abcdef0" }
  }
  override_data {
    target = module.network.data.aws_subnets.default
    values = { ids = ["subnet-0bbb", "subnet-0aaa"] }
  }
  override_data {
    target = module.server.data.aws_iam_policy_document.instance_assume
    values = { json = "{}" }
  }
  override_data {
    target = data.aws_iam_policy_document.rds_monitoring_assume
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
  allowed_cidrs   = ["203.0.113.0/24"]
  repository_url  = "https://git.example.org/clinic/healthcare.git"
  domain_name     = "records.clinic.example"
  route53_zone_id = "Z0123456789EXAMPLE"
}

run "https_load_balancer_by_default" {
  command = apply

  assert {
    condition     = aws_lb_listener.https[0].port == 443 && aws_lb_listener.https[0].protocol == "HTTPS" && aws_lb_listener.https[0].ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    error_message = "HTTPS on 443 with TLS 1.2 or newer"
  }
  assert {
    condition     = aws_lb_listener.https[0].certificate_arn == aws_acm_certificate_validation.app[0].certificate_arn && aws_acm_certificate.app[0].validation_method == "DNS"
    error_message = "the listener uses the ACM certificate once it is validated"
  }
  assert {
    condition     = aws_lb_listener.redirect[0].port == 80 && aws_lb_listener.redirect[0].default_action[0].type == "redirect" && aws_lb_listener.redirect[0].default_action[0].redirect[0].protocol == "HTTPS" && aws_lb_listener.redirect[0].default_action[0].redirect[0].status_code == "HTTP_301" && length(aws_lb_listener.plain_http) == 0
    error_message = "port 80 only redirects to HTTPS"
  }
  assert {
    condition     = aws_route53_record.app[0].alias[0].name == aws_lb.app.dns_name
    error_message = "the domain name points at the load balancer"
  }
  assert {
    condition     = aws_lb.app.drop_invalid_header_fields && aws_lb.app.enable_deletion_protection
    error_message = "the load balancer drops invalid headers and cannot be deleted by accident"
  }
  assert {
    condition     = aws_lb_target_group.app.health_check[0].path == "/readyz" && aws_lb_target_group.app.deregistration_delay == "30"
    error_message = "servers are health-checked on /readyz and drained for 30 s"
  }
}

run "at_least_two_servers_over_two_zones" {
  command = apply

  assert {
    condition     = aws_autoscaling_group.app.min_size >= 2 && length(aws_autoscaling_group.app.vpc_zone_identifier) >= 2
    error_message = "two servers at least, in two availability zones at least"
  }
  assert {
    condition     = aws_autoscaling_group.app.health_check_type == "ELB" && contains(aws_autoscaling_group.app.target_group_arns, aws_lb_target_group.app.arn)
    error_message = "the group's servers sit behind the load balancer, which decides their health"
  }
  assert {
    condition     = aws_autoscaling_group.app.launch_template[0].id == aws_launch_template.app.id && aws_autoscaling_group.app.instance_refresh[0].preferences[0].min_healthy_percentage == 100
    error_message = "servers come from the launch template and are replaced one at a time without losing capacity"
  }
  assert {
    condition     = aws_launch_template.app.metadata_options[0].http_tokens == "required" && aws_launch_template.app.metadata_options[0].http_put_response_hop_limit == 1
    error_message = "IMDSv2 is required"
  }
  assert {
    condition     = aws_launch_template.app.block_device_mappings[0].ebs[0].encrypted == "true" && aws_launch_template.app.block_device_mappings[0].ebs[0].kms_key_id == module.keys.kms_key_arn
    error_message = "the servers' volumes are encrypted with the customer-managed key"
  }
}

run "the_same_bootstrap_without_secrets_in_user_data" {
  command = apply

  assert {
    condition     = strcontains(base64decode(aws_launch_template.app.user_data), "docker compose --project-directory") && strcontains(base64decode(aws_launch_template.app.user_data), "DATA_VOLUME_ID=''")
    error_message = "the single instance's bootstrap, without its data volume"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.app.user_data), "DATABASE_SECRET_ARN='arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-mock'") && strcontains(base64decode(aws_launch_template.app.user_data), "DATABASE_ENDPOINT='healthcare-db.mock.eu-west-1.rds.amazonaws.com:5432'")
    error_message = "the servers find the database and the name of its secret in user data"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.app.user_data), "TRUSTED_PROXIES='1'")
    error_message = "behind the load balancer the app believes one proxy's forwarded headers"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.app.user_data), "SECRET_ID='${module.keys.secret_key_arn}'")
    error_message = "the servers read the shared secret key by its name at boot"
  }
  assert {
    condition     = aws_db_instance.db.manage_master_user_password && aws_db_instance.db.password == null
    error_message = "RDS manages the database password in Secrets Manager; Terraform never has it"
  }
}

run "database_multi_az_encrypted_backed_up_tls_only" {
  command = apply

  assert {
    condition     = aws_db_instance.db.multi_az && aws_db_instance.db.storage_encrypted && aws_db_instance.db.kms_key_id == module.keys.kms_key_arn
    error_message = "Multi-AZ and encrypted with the customer-managed key"
  }
  assert {
    condition     = aws_db_instance.db.backup_retention_period >= 7 && aws_db_instance.db.deletion_protection && !aws_db_instance.db.skip_final_snapshot
    error_message = "automated backups, deletion protection, a final snapshot"
  }
  assert {
    condition     = !aws_db_instance.db.publicly_accessible && aws_db_instance.db.engine == "postgres"
    error_message = "PostgreSQL, not reachable from the internet"
  }
  assert {
    condition     = anytrue([for p in aws_db_parameter_group.db.parameter : p.name == "rds.force_ssl" && p.value == "1"]) && aws_db_instance.db.parameter_group_name == aws_db_parameter_group.db.name
    error_message = "the database refuses connections without TLS"
  }
  assert {
    condition     = anytrue([for p in aws_db_parameter_group.db.parameter : p.name == "log_parameter_max_length" && p.value == "0"])
    error_message = "logged statements never carry their values (patient data)"
  }
}

run "security_groups_are_chained" {
  command = apply

  assert {
    condition     = toset(keys(aws_vpc_security_group_ingress_rule.alb)) == toset(["80-203.0.113.0/24", "443-203.0.113.0/24"])
    error_message = "only 80 and 443 on the load balancer, only from allowed_cidrs"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.app_from_alb.referenced_security_group_id == aws_security_group.alb.id && aws_vpc_security_group_ingress_rule.app_from_alb.security_group_id == aws_security_group.app.id && aws_vpc_security_group_ingress_rule.app_from_alb.from_port == 9000
    error_message = "only the load balancer reaches the app servers"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.db_from_app.referenced_security_group_id == aws_security_group.app.id && aws_vpc_security_group_ingress_rule.db_from_app.security_group_id == aws_security_group.db.id && aws_vpc_security_group_ingress_rule.db_from_app.from_port == 5432
    error_message = "only the app servers reach the database"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.db_from_migration_source) == 0
    error_message = "no other way into the database unless a migration asks for one"
  }
  assert {
    condition     = aws_db_instance.db.vpc_security_group_ids == toset([aws_security_group.db.id]) && aws_launch_template.app.vpc_security_group_ids == toset([aws_security_group.app.id]) && aws_lb.app.security_groups == toset([aws_security_group.alb.id])
    error_message = "each tier carries its own group"
  }
}

run "a_migration_source_reaches_the_database_while_asked" {
  command = plan

  variables {
    migration_source_security_group_id = "sg-0single0instance0"
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.db_from_migration_source[0].referenced_security_group_id == "sg-0single0instance0" && aws_vpc_security_group_ingress_rule.db_from_migration_source[0].from_port == 5432
    error_message = "the single instance's group may reach PostgreSQL during the move"
  }
}

run "plain_http_only_when_asked_for" {
  command = apply

  variables {
    domain_name      = ""
    route53_zone_id  = ""
    allow_plain_http = true
  }

  assert {
    condition     = length(aws_lb_listener.https) == 0 && length(aws_acm_certificate.app) == 0
    error_message = "no certificate and no HTTPS listener"
  }
  assert {
    condition     = aws_lb_listener.plain_http[0].default_action[0].type == "forward" && length(aws_lb_listener.redirect) == 0 && keys(aws_vpc_security_group_ingress_rule.alb) == ["80-203.0.113.0/24"]
    error_message = "port 80 forwards, and is the only one open"
  }
}

run "plain_http_is_refused_by_default" {
  command = plan

  variables {
    route53_zone_id = ""
  }

  expect_failures = [var.allow_plain_http]
}

run "one_server_is_refused" {
  command = plan

  variables {
    instances = { min = 1, desired = 1, max = 2 }
  }

  expect_failures = [var.instances]
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
    condition     = strcontains(base64decode(aws_launch_template.app.user_data), "\"file_path\":\"/var/lib/docker/volumes/healthcare_audit/_data/checkpoints.jsonl\",\"log_group_name\":\"/healthcare/audit-checkpoints\"")
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
    condition     = strcontains(base64decode(aws_launch_template.app.user_data), "AUDIT_AGENT_CONFIG=''")
    error_message = "no agent configuration"
  }
}

run "bad_values_are_refused" {
  command = plan

  variables {
    allowed_cidrs            = ["not-a-cidr"]
    db_backup_retention_days = 1
    db_storage_gb            = 5
    db_instance_class        = "t3.micro"
    name                     = "Bad Name"
  }

  expect_failures = [var.allowed_cidrs, var.db_backup_retention_days, var.db_storage_gb, var.db_instance_class, var.name]
}

run "the_audit_key_comes_from_its_own_secret" {
  command = apply

  assert {
    condition     = strcontains(base64decode(aws_launch_template.app.user_data), "AUDIT_KEY_ID='${module.keys.audit_key_arn}'") && module.keys.audit_key_arn != module.keys.secret_key_arn
    error_message = "every server (one launch template) reads the audit key from its own secret, by name; its value is never in user data"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.app.user_data), "HEALTHCARE_AUDIT_KEY=$audit\n")
    error_message = "the bootstrap puts the audit key into the app's environment (.env)"
  }
}
