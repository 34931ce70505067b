"""PostgreSQL keeps the patient totals in 64 slots, one per server connection, not in one row.

Every statement that writes patients updated the one totals row, and that row's lock was held
until the transaction committed. Two server processes (or two servers) that both create
patients therefore ran their write transactions one after the other, from the first insert to
the commit: the second waited out the whole of the first. Each connection now updates the
slot of its backend process, so concurrent writers share no row; readers add the slots up
(``healthcare.db.models.patient_total``). A transaction only ever updates one slot. (SQLite
has one writer at a time; it keeps its one row.)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The statement trigger of migration 0008, with the slot. Its code is frozen with it.
TRACK = """CREATE OR REPLACE FUNCTION patient_totals_track() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        added_active bigint := 0;
        added_deleted bigint := 0;
    BEGIN
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            SELECT count(*) FILTER (WHERE deleted_at IS NULL),
                   count(*) FILTER (WHERE deleted_at IS NOT NULL)
              INTO added_active, added_deleted FROM new_rows;
        END IF;
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            SELECT added_active - count(*) FILTER (WHERE deleted_at IS NULL),
                   added_deleted - count(*) FILTER (WHERE deleted_at IS NOT NULL)
              INTO added_active, added_deleted FROM old_rows;
        END IF;
        UPDATE patient_totals SET active = active + added_active,
            deleted = deleted + added_deleted, revision = revision + 1
         WHERE %s;
        RETURN NULL;
    END $$"""
IN_SLOTS = [
    "ALTER TABLE patient_totals DROP CONSTRAINT patient_totals_id_check",
    "ALTER TABLE patient_totals ADD CONSTRAINT patient_totals_id_check CHECK (id BETWEEN 1 AND 64)",
    "INSERT INTO patient_totals (id, active, deleted, revision) "
    "SELECT slot, 0, 0, 0 FROM generate_series(2, 64) AS slot",
    TRACK % "id = 1 + pg_backend_pid() % 64",
]
IN_ONE_ROW = [
    # Writers of patients finish first and the next wait for the one-row trigger: a write
    # caught between the sum and the delete would lose its counts with its slot.
    "LOCK TABLE patients, patient_totals IN EXCLUSIVE MODE",
    TRACK % "TRUE",
    "UPDATE patient_totals SET (active, deleted, revision) = (SELECT sum(active), "
    "sum(deleted), sum(revision) FROM patient_totals) WHERE id = 1",
    "DELETE FROM patient_totals WHERE id > 1",
    "ALTER TABLE patient_totals DROP CONSTRAINT patient_totals_id_check",
    "ALTER TABLE patient_totals ADD CONSTRAINT patient_totals_id_check CHECK (id = 1)",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in IN_SLOTS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in IN_ONE_ROW:
            op.execute(statement)
