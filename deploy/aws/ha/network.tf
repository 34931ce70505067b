# High-availability mode: an Application Load Balancer over an Auto Scaling group of app servers
# in two or more availability zones, and RDS PostgreSQL Multi-AZ. It uses the account's default
# VPC, as the single-instance mode does (one subnet per zone, outbound access without a NAT
# gateway); security groups, chained below, decide who reaches what.

locals {
  https      = !var.allow_plain_http
  subnet_ids = module.network.subnet_ids
}

module "network" {
  source = "../modules/default-vpc"

  min_subnets = 2
}

# Internet -> load balancer -> app servers -> database, and nothing else.
resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "healthcare load balancer: 443 (and 80, which redirects) from allowed_cidrs"
  vpc_id      = module.network.vpc_id
}

resource "aws_security_group" "app" {
  name        = "${var.name}-app"
  description = "healthcare app servers: the app port from the load balancer only"
  vpc_id      = module.network.vpc_id
}

resource "aws_security_group" "db" {
  name        = "${var.name}-db"
  description = "healthcare database: PostgreSQL from the app servers only"
  vpc_id      = module.network.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "alb" {
  for_each = { for pair in setproduct(local.https ? [80, 443] : [80], var.allowed_cidrs) : "${pair[0]}-${pair[1]}" => pair }

  security_group_id = aws_security_group.alb.id
  description       = "clients from an allowed network"
  ip_protocol       = "tcp"
  from_port         = each.value[0]
  to_port           = each.value[0]
  cidr_ipv4         = each.value[1]
}

resource "aws_vpc_security_group_egress_rule" "alb_to_app" {
  security_group_id            = aws_security_group.alb.id
  description                  = "to the app servers"
  ip_protocol                  = "tcp"
  from_port                    = var.app_port
  to_port                      = var.app_port
  referenced_security_group_id = aws_security_group.app.id
}

resource "aws_vpc_security_group_ingress_rule" "app_from_alb" {
  security_group_id            = aws_security_group.app.id
  description                  = "from the load balancer only"
  ip_protocol                  = "tcp"
  from_port                    = var.app_port
  to_port                      = var.app_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "app_to_db" {
  security_group_id            = aws_security_group.app.id
  description                  = "to the database"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.db.id
}

resource "aws_vpc_security_group_egress_rule" "app_out" {
  for_each = { https = 443, http = 80 }

  security_group_id = aws_security_group.app.id
  description       = "${upper(each.key)} out: packages, the git repository, AWS APIs"
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "db_from_app" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the app servers only"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.app.id
}

resource "aws_vpc_security_group_ingress_rule" "db_from_migration_source" {
  count = var.migration_source_security_group_id != "" ? 1 : 0

  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the single instance, while its data is copied here"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = var.migration_source_security_group_id
}
