output "public_ip" {
  description = "The instance's public IP address."
  value       = aws_instance.service.public_ip
}

output "service_url" {
  description = "Where the service answers."
  value       = var.domain_name != "" ? "https://${var.domain_name}" : "http://${aws_instance.service.public_ip}:${var.app_port}"
}

output "connect_command" {
  description = "How to get a shell on the instance."
  value       = var.ssh_public_key != "" ? "ssh ec2-user@${aws_instance.service.public_ip}" : "aws ssm start-session --region ${var.region} --target ${aws_instance.service.id}"
}

output "data_volume_id" {
  description = "The encrypted EBS volume holding the database; it survives instance replacement."
  value       = aws_ebs_volume.data.id
}

output "security_group_id" {
  description = "The instance's security group (deploy/aws/ha's migration_source_security_group_id while moving)."
  value       = aws_security_group.service.id
}

output "audit_log_group_name" {
  description = "The CloudWatch Logs group holding the shipped audit checkpoints (null when not shipped)."
  value       = try(module.server.audit_log_group.name, null)
}
