variable "min_subnets" {
  description = "How many default subnets (one per availability zone) the deployment needs at least."
  type        = number
  default     = 1

  validation {
    condition     = var.min_subnets >= 1
    error_message = "min_subnets must be at least 1."
  }
}
