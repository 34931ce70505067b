"""Listings and searches account for every patient they return (issue 13, item 3).

A listing keeps one audit row; the patients it returned go to ``audit_disclosures``, one
narrow row each, written in the same transaction, so a patient's access log can show them.

Listings page through active patients by id with an offset: a partial index on the active
ids lets the database skip the rows before the page in a narrow index instead of in the wide
table (a page at a random offset of 100,000 rows took about half the time in-process).

Revision ID: 0004r
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004r"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
ACTIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "audit_disclosures",
        sa.Column("event_id", BIG_ID, primary_key=True, autoincrement=False),
        sa.Column("patient_id", sa.Integer, primary_key=True, autoincrement=False),
    )
    op.create_index("ix_audit_disclosures_patient", "audit_disclosures", ["patient_id", "event_id"])
    op.create_index(
        "ix_patients_active_id", "patients", ["id"], sqlite_where=ACTIVE, postgresql_where=ACTIVE
    )


def downgrade() -> None:
    op.drop_index("ix_patients_active_id", "patients")
    op.drop_index("ix_audit_disclosures_patient", "audit_disclosures")
    op.drop_table("audit_disclosures")
