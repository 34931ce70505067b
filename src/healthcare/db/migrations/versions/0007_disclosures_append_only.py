"""The patients each listing disclosed are append-only, like the audit rows they belong to.

(Their ids are also in the hash of the keyed audit row they belong to: see
``healthcare.audit.trail.row_hash``.)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SQLITE_APPEND_ONLY = [
    "CREATE TRIGGER audit_disclosures_no_update BEFORE UPDATE ON audit_disclosures "
    "BEGIN SELECT RAISE(ABORT, 'audit_disclosures is append-only'); END",
    "CREATE TRIGGER audit_disclosures_no_delete BEFORE DELETE ON audit_disclosures "
    "BEGIN SELECT RAISE(ABORT, 'audit_disclosures is append-only'); END",
]
POSTGRES_APPEND_ONLY = [
    """CREATE FUNCTION audit_disclosures_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_disclosures is append-only';
    END $$""",
    "CREATE TRIGGER audit_disclosures_no_change BEFORE UPDATE OR DELETE ON audit_disclosures "
    "FOR EACH ROW EXECUTE FUNCTION audit_disclosures_append_only()",
    "CREATE TRIGGER audit_disclosures_no_truncate BEFORE TRUNCATE ON audit_disclosures "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_disclosures_append_only()",
]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_APPEND_ONLY if sqlite else POSTGRES_APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_disclosures_append_only CASCADE")
    else:
        op.execute("DROP TRIGGER audit_disclosures_no_update")
        op.execute("DROP TRIGGER audit_disclosures_no_delete")
