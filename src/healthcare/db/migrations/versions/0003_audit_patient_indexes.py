"""Audit rows by patient without a random index insert per read.

An index on (patient_id, id) takes every read's row at a random place; with hundreds of
thousands of rows each insert dirtied a page of its own, and that cost a read more than the
rest of its audit row. Rows are now indexed by patient within eras of 4,096 consecutive ids:
new rows land in the newest era's few pages, and a patient's rows are found era by era (see
``healthcare.audit.queries``). Changes, which are few, keep a plain per-patient index for
"who last changed this record".

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

HAS_PATIENT = sa.text("patient_id IS NOT NULL")
IS_CHANGE = sa.text(
    "action IN ('patient.create', 'patient.update', 'patient.delete', 'patient.restore')"
)


def upgrade() -> None:
    op.drop_index("ix_audit_events_patient", "audit_events")
    op.create_index(
        "ix_audit_events_patient_era",
        "audit_events",
        [sa.text("(id / 4096)"), "patient_id", "id"],
        sqlite_where=HAS_PATIENT,
        postgresql_where=HAS_PATIENT,
    )
    op.create_index(
        "ix_audit_events_patient_change",
        "audit_events",
        ["patient_id", "id"],
        sqlite_where=IS_CHANGE,
        postgresql_where=IS_CHANGE,
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_patient_change", "audit_events")
    op.drop_index("ix_audit_events_patient_era", "audit_events")
    op.create_index(
        "ix_audit_events_patient",
        "audit_events",
        ["patient_id", "id"],
        sqlite_where=HAS_PATIENT,
        postgresql_where=HAS_PATIENT,
    )
