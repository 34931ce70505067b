output "vpc_id" {
  description = "Id of the default VPC."
  value       = data.aws_vpc.default.id
}

output "subnet_ids" {
  description = "Ids of its default subnets, sorted (so the first one does not change between plans)."
  value       = sort(data.aws_subnets.default.ids)
}
