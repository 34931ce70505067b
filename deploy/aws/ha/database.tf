# PostgreSQL on RDS, Multi-AZ: a standby in a second zone takes over on its own. The master
# password is created, kept and rotated by RDS in Secrets Manager: Terraform never sees it.

resource "aws_db_subnet_group" "db" {
  name        = "${var.name}-db"
  description = "healthcare database: every default subnet, so the standby can be in another zone"
  subnet_ids  = local.subnet_ids
}

resource "aws_db_parameter_group" "db" {
  name        = "${var.name}-postgres16"
  family      = "postgres16"
  description = "healthcare: TLS required, DDL and slow statements logged without their values"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  parameter {
    # A slow statement is logged without its parameters: they are patient data.
    name  = "log_parameter_max_length"
    value = "0"
  }
}

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "db" {
  identifier            = "${var.name}-db"
  engine                = "postgres"
  engine_version        = "16"
  instance_class        = var.db_instance_class
  allocated_storage     = var.db_storage_gb
  max_allocated_storage = var.db_storage_gb * 4
  storage_type          = "gp3"
  db_name               = "healthcare"
  username              = "healthcare"

  manage_master_user_password   = true
  master_user_secret_kms_key_id = module.keys.kms_key_arn

  multi_az               = true
  db_subnet_group_name   = aws_db_subnet_group.db.name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false
  parameter_group_name   = aws_db_parameter_group.db.name

  storage_encrypted = true
  kms_key_id        = module.keys.kms_key_arn

  backup_retention_period   = var.db_backup_retention_days
  backup_window             = "02:00-02:45"
  maintenance_window        = "sun:03:30-sun:04:30"
  copy_tags_to_snapshot     = true
  deletion_protection       = true
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.name}-db-final"

  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  performance_insights_enabled        = true
  performance_insights_kms_key_id     = module.keys.kms_key_arn
  monitoring_interval                 = 60
  monitoring_role_arn                 = aws_iam_role.rds_monitoring.arn
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
}
