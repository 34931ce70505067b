output "service_url" {
  description = "Where the service answers."
  value       = local.https ? "https://${var.domain_name}" : "http://${aws_lb.app.dns_name}"
}

output "load_balancer_dns_name" {
  description = "The load balancer's own name (the alias record points here)."
  value       = aws_lb.app.dns_name
}

output "database_endpoint" {
  description = "host:port of the RDS database (reachable from the app servers only)."
  value       = aws_db_instance.db.endpoint
}

output "database_secret_arn" {
  description = "The RDS-managed secret with the database credentials (the ARN, not the secret)."
  value       = aws_db_instance.db.master_user_secret[0].secret_arn
}

output "autoscaling_group_name" {
  description = "The app servers' group: `aws autoscaling start-instance-refresh --auto-scaling-group-name` replaces them one by one."
  value       = aws_autoscaling_group.app.name
}

output "audit_log_group_name" {
  description = "The CloudWatch Logs group holding the shipped audit checkpoints (null when not shipped)."
  value       = try(module.server.audit_log_group.name, null)
}
