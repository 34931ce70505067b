# One customer-managed key for everything that holds health data or a secret: the servers'
# volumes, the database, its backups and Performance Insights, the secrets. The application's
# secret key is shared by every server (sessions and CSRF tokens made by one are checked by
# another), and so is the audit key (every server extends the one hash chain).
module "keys" {
  source = "../modules/keys"

  name               = var.name
  key_description    = "${var.name} volumes, database and secrets"
  secret_description = "HEALTHCARE_SECRET_KEY for ${var.name}, stored by the first server at boot"
  log_group_names    = compact([local.audit_log_group])
}
