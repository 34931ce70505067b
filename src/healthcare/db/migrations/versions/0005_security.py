"""Security review (issue 13): where the keyed audit chain begins, the token behind each audit
row, one label per user's tokens, who a token was created by, a forced first password change,
and a 90-day lifetime for the tokens that had none.

Existing audit rows keep their plain SHA-256 hashes: ``audit_chain.keyed_from`` (NULL until
the first keyed write) is the id from which every row is an HMAC under the audit key.
Duplicate token labels of one user are renamed ``label (id N)`` before the unique constraint.

Revision ID: 0005
Revises: 0004r
Create Date: 2026-11-29
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004r"
branch_labels = None
depends_on = None


def _rename_duplicate_labels() -> None:
    tokens = sa.table("api_tokens", sa.column("id"), sa.column("user_id"), sa.column("label"))
    bind = op.get_bind()
    seen: set[tuple[int, str]] = set()
    for token_id, user_id, label in bind.execute(
        sa.select(tokens.c.id, tokens.c.user_id, tokens.c.label).order_by(tokens.c.id)
    ):
        if (user_id, label) in seen:
            renamed = f"{label[:80]} (id {token_id})"
            bind.execute(tokens.update().where(tokens.c.id == token_id).values(label=renamed))
        seen.add((user_id, label))


def _give_lifetimes_to_tokens_without_one() -> None:
    """Tokens made before lifetimes existed never expired: they now last 90 days from here."""
    tokens = sa.table("api_tokens", sa.column("expires_at", sa.DateTime(timezone=True)))
    ends = datetime.now(UTC) + timedelta(days=90)
    op.get_bind().execute(
        tokens.update().where(tokens.c.expires_at.is_(None)).values(expires_at=ends)
    )


def upgrade() -> None:
    # Plain ADD COLUMN and CREATE INDEX: no table is rebuilt, so the audit triggers stay.
    op.add_column("audit_chain", sa.Column("keyed_from", sa.BigInteger))
    op.add_column("audit_chain", sa.Column("key_id", sa.String(16)))
    op.add_column("audit_events", sa.Column("token_id", sa.Integer))
    op.add_column("api_tokens", sa.Column("created_by", sa.String(64)))
    op.add_column(
        "users",
        sa.Column("must_change_password", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    _rename_duplicate_labels()
    _give_lifetimes_to_tokens_without_one()
    op.create_index("uq_api_tokens_user_label", "api_tokens", ["user_id", "label"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_api_tokens_user_label", "api_tokens")
    # Dropped in place on SQLite (3.35+) and PostgreSQL alike: no table is rebuilt, so the
    # audit triggers and the chain's CHECK stay.
    for table, column in (
        ("users", "must_change_password"),
        ("api_tokens", "created_by"),
        ("audit_events", "token_id"),
        ("audit_chain", "keyed_from"),
        ("audit_chain", "key_id"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
