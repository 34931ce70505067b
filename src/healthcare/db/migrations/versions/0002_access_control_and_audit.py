"""Users, API tokens, browser sessions and the append-only, hash-chained audit trail.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64
SQLITE_APPEND_ONLY = [
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
]
POSTGRES_APPEND_ONLY = [
    """CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only';
    END $$""",
    "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
]


def _moment() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", _moment(), nullable=False),
        sa.Column("password_changed_at", _moment(), nullable=False),
        sa.Column("disabled_at", _moment()),
        sa.CheckConstraint("role IN ('viewer', 'clinician', 'admin')", name="ck_users_role"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", _moment(), nullable=False),
        sa.Column("expires_at", _moment()),
        sa.Column("revoked_at", _moment()),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("created_at", _moment(), nullable=False),
        sa.Column("last_seen_at", _moment(), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_table(
        "audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("at", _moment(), nullable=False),
        sa.Column("user_id", sa.Integer),
        sa.Column("username", sa.String(64)),
        sa.Column("token_label", sa.String(100)),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("patient_id", sa.Integer),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("client", sa.String(64)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("fields", sa.String(400)),
        sa.Column("detail", sa.String(200)),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_audit_events_patient",
        "audit_events",
        ["patient_id", "id"],
        sqlite_where=sa.text("patient_id IS NOT NULL"),
        postgresql_where=sa.text("patient_id IS NOT NULL"),
    )
    op.create_index("ix_audit_events_username", "audit_events", ["username", "id"])
    op.create_index("ix_audit_events_action", "audit_events", ["action", "at"])
    chain = op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer, sa.CheckConstraint("id = 1"), primary_key=True),
        sa.Column("last_id", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(chain, [{"id": 1, "last_id": 0, "last_hash": GENESIS_HASH}])
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_APPEND_ONLY if sqlite else POSTGRES_APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_events_append_only CASCADE")
    for table in ("audit_chain", "audit_events", "user_sessions", "api_tokens", "users"):
        op.drop_table(table)
