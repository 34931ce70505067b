"""Disclosure rows by patient within eras, as the audit rows are (migration 0003).

A per-patient index over every disclosure took each row at a random place: a listing's 50
rows dirtied up to 50 index pages, every commit wrote them all again, and under a load of
listings and searches the read audit's flush became what held the server back (its readers
waited on the backpressure for flushes of half a second; docs/request-path.md). Indexed by
era of 4,096 event ids first, new rows land in the newest era's few pages; a patient's
listings are found era by era (``healthcare.audit.queries``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_audit_disclosures_patient", "audit_disclosures")
    op.create_index(
        "ix_audit_disclosures_patient_era",
        "audit_disclosures",
        [sa.text("(event_id / 4096)"), "patient_id", "event_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_audit_disclosures_patient_era", "audit_disclosures")
    op.create_index("ix_audit_disclosures_patient", "audit_disclosures", ["patient_id", "event_id"])
