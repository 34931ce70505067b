output "kms_key_arn" {
  description = "ARN of the customer-managed KMS key."
  value       = aws_kms_key.data.arn
}

output "secret_key_arn" {
  description = "ARN of the (initially empty) secret that holds the application's secret key."
  value       = aws_secretsmanager_secret.secret_key.arn
}

output "audit_key_arn" {
  description = "ARN of the (initially empty) secret that holds the audit trail's HMAC key."
  value       = aws_secretsmanager_secret.audit_key.arn
}
