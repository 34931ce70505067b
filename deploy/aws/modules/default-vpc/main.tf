# The account's default VPC and its default subnets, one per availability zone: they reach the
# internet without a NAT gateway, and there are no subnets or peering of our own to get wrong.

data "aws_vpc" "default" {
  default = true
}

data "aws_subnets" "default" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default.id]
  }
  filter {
    name   = "default-for-az"
    values = ["true"]
  }

  lifecycle {
    postcondition {
      condition     = length(self.ids) >= var.min_subnets
      error_message = "the default VPC needs default subnets in at least ${var.min_subnets} availability zones."
    }
  }
}
