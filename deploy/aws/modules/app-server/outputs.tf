output "ami_id" {
  description = "The latest Amazon Linux 2023 AMI (from the public SSM parameter)."
  value       = data.aws_ssm_parameter.al2023_ami.insecure_value
}

output "role_name" {
  description = "Name of the instance role."
  value       = aws_iam_role.instance.name
}

output "instance_profile_name" {
  description = "Name of the instance profile."
  value       = aws_iam_instance_profile.instance.name
}

output "instance_profile_arn" {
  description = "ARN of the instance profile."
  value       = aws_iam_instance_profile.instance.arn
}

output "user_data" {
  description = "The bootstrap script (cloud-init.sh.tftpl), rendered; base64-encode it for a launch template."
  value       = local.user_data
}

output "audit_log_group" {
  description = "The log group the audit checkpoints are shipped to (name, arn, retention_in_days, kms_key_id); null when they are not shipped."
  value       = one(aws_cloudwatch_log_group.audit_checkpoints)
}
