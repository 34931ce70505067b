variable "name" {
  description = "Name prefix of the deployment; the secrets are called NAME/secret-key and NAME/audit-key."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "key_description" {
  description = "Description of the KMS key: what it encrypts."
  type        = string
}

variable "secret_description" {
  description = "Description of the secret that holds the application's secret key."
  type        = string
}

variable "log_group_names" {
  description = "CloudWatch Logs groups of this account and region that may be encrypted with the key."
  type        = list(string)
  default     = []
}
