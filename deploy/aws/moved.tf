# Where resources went when what both modes share moved into deploy/aws/modules: an existing
# deployment keeps them (the same key, secret, role and profile) instead of replacing them.

moved {
  from = aws_kms_key.data
  to   = module.keys.aws_kms_key.data
}

moved {
  from = aws_secretsmanager_secret.secret_key
  to   = module.keys.aws_secretsmanager_secret.secret_key
}

moved {
  from = aws_iam_role.instance
  to   = module.server.aws_iam_role.instance
}

moved {
  from = aws_iam_role_policy_attachment.ssm_core
  to   = module.server.aws_iam_role_policy_attachment.ssm_core
}

moved {
  from = aws_iam_role_policy.read_secret
  to   = module.server.aws_iam_role_policy.read_secrets
}

moved {
  from = aws_iam_instance_profile.instance
  to   = module.server.aws_iam_instance_profile.instance
}
