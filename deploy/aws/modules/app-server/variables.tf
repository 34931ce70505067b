variable "name" {
  description = "Name of the instance role and profile."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,63}$", var.name))
    error_message = "name must be 2-64 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "secrets_policy_name" {
  description = "Name of the role's inline policy that reads the secrets."
  type        = string
  default     = "read-secrets"
}

variable "region" {
  description = "AWS region of the secrets the bootstrap reads."
  type        = string
}

variable "kms_key_arn" {
  description = "The customer-managed KMS key of the secrets."
  type        = string
}

variable "secret_key_arn" {
  description = "The secret holding HEALTHCARE_SECRET_KEY; the first server to boot fills it in."
  type        = string
}

variable "audit_key_arn" {
  description = "The secret holding HEALTHCARE_AUDIT_KEY, the audit trail's HMAC key shared by every server; the first server to boot fills it in."
  type        = string
}

variable "database" {
  description = "PostgreSQL on RDS: its endpoint (host:port) and the RDS-managed secret with its credentials. Null: SQLite on the server."
  type        = object({ endpoint = string, secret_arn = string })
  default     = null
}

variable "data_volume_id" {
  description = "The EBS volume the bootstrap formats (first time only) and mounts where the compose data volume lives. Empty: none."
  type        = string
  default     = ""
}

variable "repository_url" {
  description = "Git URL the server clones the service from."
  type        = string
}

variable "repository_ref" {
  description = "Git branch, tag or commit to deploy."
  type        = string
}

variable "app_port" {
  description = "Port the service listens on."
  type        = number

  validation {
    condition     = var.app_port >= 1024 && var.app_port <= 65535
    error_message = "app_port must be between 1024 and 65535."
  }
}

variable "domain_name" {
  description = "Caddy on the server terminates HTTPS for this name and the app port stays on 127.0.0.1. Empty: no Caddy, the app port is published."
  type        = string
  default     = ""
}

variable "trusted_proxies" {
  description = "How many proxies in front of the app (Caddy, a load balancer) whose X-Forwarded-* headers are believed."
  type        = number

  validation {
    condition     = contains([0, 1], var.trusted_proxies)
    error_message = "trusted_proxies must be 0 or 1."
  }
}

variable "audit_log_group_name" {
  description = "CloudWatch Logs group that the CloudWatch agent ships the app's audit checkpoints to, line by line. Empty: not shipped."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^$|^[A-Za-z0-9_./#-]{1,512}$", var.audit_log_group_name))
    error_message = "audit_log_group_name must be a CloudWatch Logs group name: letters, digits and _ . / # - only."
  }
}

variable "audit_log_retention_days" {
  description = "How long CloudWatch Logs keeps the shipped checkpoints: at least a year (0: forever)."
  type        = number
  default     = 400

  validation {
    condition     = contains([0, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.audit_log_retention_days)
    error_message = "audit_log_retention_days must be a CloudWatch Logs retention of at least a year: 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653, or 0 (forever)."
  }
}
