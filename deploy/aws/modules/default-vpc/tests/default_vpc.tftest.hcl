# Offline: every AWS data source is mocked.
mock_provider "aws" {
  override_data {
    target = data.aws_vpc.default
    values = { id = "vpc-0default" }
  }
  override_data {
    target = data.aws_subnets.default
    values = { ids = ["subnet-0bbb", "subnet-0aaa"] }
  }
}

run "the_default_subnets_sorted" {
  command = plan

  variables {
    min_subnets = 2
  }

  assert {
    condition     = join(",", output.subnet_ids) == "subnet-0aaa,subnet-0bbb" && output.vpc_id == "vpc-0default"
    error_message = "the subnets come sorted, so the first one stays the first"
  }
}

run "too_few_zones_are_refused" {
  command = plan

  variables {
    min_subnets = 3
  }

  expect_failures = [data.aws_subnets.default]
}
