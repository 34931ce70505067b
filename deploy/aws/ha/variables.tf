variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Name prefix for every resource."
  type        = string
  default     = "healthcare"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,24}$", var.name))
    error_message = "name must be 2-25 lower-case letters, digits or hyphens, starting with a letter (the load balancer's name adds to it)."
  }
}

variable "allowed_cidrs" {
  description = "CIDR blocks allowed to reach the load balancer (443, and 80 which only redirects)."
  type        = list(string)

  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_cidrs must be a non-empty list of valid CIDR blocks, e.g. [\"203.0.113.0/24\"]."
  }
}

variable "domain_name" {
  description = "The service's public name; an ACM certificate is issued for it, validated in route53_zone_id, and an alias record points it at the load balancer."
  type        = string
  default     = ""
}

variable "route53_zone_id" {
  description = "The Route 53 hosted zone of domain_name (for the certificate's validation and the alias record)."
  type        = string
  default     = ""
}

variable "allow_plain_http" {
  description = "WARNING: serves patient data and passwords unencrypted on port 80 of the load balancer. Only for a trial; leave false and set domain_name and route53_zone_id for HTTPS."
  type        = bool
  default     = false

  validation {
    condition     = var.allow_plain_http || (var.domain_name != "" && var.route53_zone_id != "")
    error_message = "set domain_name and route53_zone_id (HTTPS, the default) or, knowingly, allow_plain_http = true."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the app servers."
  type        = string
  default     = "t3.small"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like an EC2 type, e.g. t3.small."
  }
}

variable "instances" {
  description = "App servers: at least two, spread over the availability zones."
  type        = object({ min = number, desired = number, max = number })
  default     = { min = 2, desired = 2, max = 6 }

  validation {
    condition     = var.instances.min >= 2 && var.instances.min <= var.instances.desired && var.instances.desired <= var.instances.max
    error_message = "instances needs 2 <= min <= desired <= max: one server alone is not highly available."
  }
}

variable "app_port" {
  description = "Port the service listens on inside the VPC (only the load balancer reaches it)."
  type        = number
  default     = 9000

  validation {
    condition     = var.app_port >= 1024 && var.app_port <= 65535
    error_message = "app_port must be between 1024 and 65535."
  }
}

variable "repository_url" {
  description = "Git URL the instances clone the service from."
  type        = string
}

variable "repository_ref" {
  description = "Git branch, tag or commit to deploy (a change rolls the instances one by one)."
  type        = string
  default     = "main"
}

variable "db_instance_class" {
  description = "RDS instance class of the PostgreSQL database."
  type        = string
  default     = "db.t4g.medium"

  validation {
    condition     = startswith(var.db_instance_class, "db.")
    error_message = "db_instance_class must be an RDS class, e.g. db.t4g.medium."
  }
}

variable "db_storage_gb" {
  description = "Allocated storage of the database in GiB (it grows on its own up to four times this)."
  type        = number
  default     = 50

  validation {
    condition     = var.db_storage_gb >= 20 && var.db_storage_gb <= 16384
    error_message = "db_storage_gb must be between 20 and 16384."
  }
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery) of the database."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 7 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 7 and 35."
  }
}

variable "migration_source_security_group_id" {
  description = "Only while moving from the single instance: its security group may reach the database, so `healthcare db copy` can run there. Empty afterwards."
  type        = string
  default     = ""
}

variable "ship_audit_checkpoints" {
  description = "Ship the audit trail's checkpoints, line by line, to a KMS-encrypted CloudWatch Logs group that the servers cannot delete from or shorten (docs/audit-threat-model.md)."
  type        = bool
  default     = true
}

variable "audit_log_retention_days" {
  description = "How long CloudWatch Logs keeps the shipped checkpoints: at least a year (0: forever; modules/app-server refuses less)."
  type        = number
  default     = 400
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
