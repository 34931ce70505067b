"""PostgreSQL keeps the patient totals once per statement, not once per row.

A row trigger updated the one totals row two or three times for every patient written. In a
transaction that writes many patients (`healthcare db copy`, a bulk import) each of those
updates leaves a row version the next one must step over, so the work grew with the square of
the rows: a copy of 1,000,000 patients had not finished after 11 minutes. Statement triggers
with transition tables count a whole statement's rows in one update. (SQLite updates the row
in place; its row triggers stay.)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PER_STATEMENT = [
    "DROP TRIGGER patient_totals_track ON patients",
    "DROP FUNCTION patient_totals_track()",
    """CREATE FUNCTION patient_totals_track() RETURNS trigger LANGUAGE plpgsql AS $$
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
            deleted = deleted + added_deleted, revision = revision + 1;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER patient_totals_insert AFTER INSERT ON patients "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION patient_totals_track()",
    "CREATE TRIGGER patient_totals_update AFTER UPDATE ON patients "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION patient_totals_track()",
    "CREATE TRIGGER patient_totals_delete AFTER DELETE ON patients "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION patient_totals_track()",
]
# The row trigger as migration 0001 made it, for the way down (copied: a migration's code is
# frozen with it).
PER_ROW = [
    "DROP FUNCTION patient_totals_track() CASCADE",
    """CREATE FUNCTION patient_totals_track() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE patient_totals SET revision = revision + 1;
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE patient_totals SET active = active - (OLD.deleted_at IS NULL)::int,
                deleted = deleted - (OLD.deleted_at IS NOT NULL)::int;
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            UPDATE patient_totals SET active = active + (NEW.deleted_at IS NULL)::int,
                deleted = deleted + (NEW.deleted_at IS NOT NULL)::int;
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER patient_totals_track AFTER INSERT OR DELETE OR UPDATE "
    "ON patients FOR EACH ROW EXECUTE FUNCTION patient_totals_track()",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PER_STATEMENT:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PER_ROW:
            op.execute(statement)
