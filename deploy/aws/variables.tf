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
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "instance_type" {
  description = "EC2 instance type."
  type        = string
  default     = "t3.micro"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like an EC2 type, e.g. t3.micro."
  }
}

variable "allowed_cidrs" {
  description = "CIDR blocks allowed to reach the service (port 9000, or 80/443 with domain_name)."
  type        = list(string)

  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_cidrs must be a non-empty list of valid CIDR blocks, e.g. [\"203.0.113.0/24\"]."
  }
}

variable "ssh_public_key" {
  description = "OpenSSH public key for SSH access. Empty: no SSH at all; use SSM Session Manager."
  type        = string
  default     = ""

  validation {
    condition     = var.ssh_public_key == "" || can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+", var.ssh_public_key))
    error_message = "ssh_public_key must be an OpenSSH public key (ssh-ed25519, ssh-rsa or ecdsa), never a private key."
  }
}

variable "admin_cidr" {
  description = "The one CIDR block SSH is open to, when ssh_public_key is set."
  type        = string
  default     = ""

  validation {
    condition     = var.admin_cidr == "" || can(cidrhost(var.admin_cidr, 0))
    error_message = "admin_cidr must be a valid CIDR block, e.g. 198.51.100.7/32."
  }

  validation {
    condition     = !contains(["0.0.0.0/0", "::/0"], var.admin_cidr)
    error_message = "admin_cidr must not open SSH to the whole internet: give your own address, e.g. 198.51.100.7/32, or leave ssh_public_key empty and use SSM Session Manager."
  }
}

variable "app_port" {
  description = "Port the service listens on (published directly when domain_name is empty)."
  type        = number
  default     = 9000

  validation {
    condition     = var.app_port >= 1024 && var.app_port <= 65535
    error_message = "app_port must be between 1024 and 65535."
  }
}

variable "domain_name" {
  description = "Caddy terminates HTTPS for this name (automatic certificate) and only 80/443 are open. Required unless allow_plain_http is set."
  type        = string
  default     = ""
}

variable "allow_plain_http" {
  description = "WARNING: serves patient data and passwords unencrypted on app_port. Only for a closed network or a trial; leave false and set domain_name for HTTPS."
  type        = bool
  default     = false

  validation {
    condition     = var.allow_plain_http || var.domain_name != ""
    error_message = "set domain_name (HTTPS, the default) or, knowingly, allow_plain_http = true."
  }
}

variable "repository_url" {
  description = "Git URL the instance clones the service from."
  type        = string
}

variable "repository_ref" {
  description = "Git branch, tag or commit to deploy."
  type        = string
  default     = "main"
}

variable "data_volume_size" {
  description = "Size of the encrypted data volume in GiB (it survives instance replacement)."
  type        = number
  default     = 20

  validation {
    condition     = var.data_volume_size >= 1 && var.data_volume_size <= 16384
    error_message = "data_volume_size must be between 1 and 16384 GiB."
  }
}

variable "snapshot_retention" {
  description = "How many daily snapshots of the data volume to keep."
  type        = number
  default     = 14

  validation {
    condition     = var.snapshot_retention >= 1 && var.snapshot_retention <= 1000
    error_message = "snapshot_retention must be between 1 and 1000."
  }
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
