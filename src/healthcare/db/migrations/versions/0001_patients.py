"""Patients: the table, its indexes, the name-search index and the kept totals.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = [
    # External-content FTS5 over the folded names of patients that are not deleted; prefix
    # indexes make short prefixes cheap.
    "CREATE VIRTUAL TABLE patients_fts USING fts5(name_search, content='patients', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='1 2 3')",
    "CREATE TRIGGER patients_fts_insert AFTER INSERT ON patients WHEN new.deleted_at IS NULL "
    "BEGIN INSERT INTO patients_fts(rowid, name_search) VALUES (new.id, new.name_search); END",
    "CREATE TRIGGER patients_fts_delete AFTER DELETE ON patients WHEN old.deleted_at IS NULL "
    "BEGIN INSERT INTO patients_fts(patients_fts, rowid, name_search) "
    "VALUES ('delete', old.id, old.name_search); END",
    "CREATE TRIGGER patients_fts_unindex AFTER UPDATE OF name_search, deleted_at ON patients "
    "WHEN old.deleted_at IS NULL BEGIN INSERT INTO patients_fts(patients_fts, rowid, name_search) "
    "VALUES ('delete', old.id, old.name_search); END",
    "CREATE TRIGGER patients_fts_reindex AFTER UPDATE OF name_search, deleted_at ON patients "
    "WHEN new.deleted_at IS NULL BEGIN "
    "INSERT INTO patients_fts(rowid, name_search) VALUES (new.id, new.name_search); END",
    # Totals and a revision kept by the database itself, in the writing transaction: an
    # unfiltered page needs no count, and a cached page is valid while the revision stands.
    "CREATE TRIGGER patient_totals_insert AFTER INSERT ON patients BEGIN "
    "UPDATE patient_totals SET active = active + (new.deleted_at IS NULL), "
    "deleted = deleted + (new.deleted_at IS NOT NULL), revision = revision + 1; END",
    "CREATE TRIGGER patient_totals_delete AFTER DELETE ON patients BEGIN "
    "UPDATE patient_totals SET active = active - (old.deleted_at IS NULL), "
    "deleted = deleted - (old.deleted_at IS NOT NULL), revision = revision + 1; END",
    "CREATE TRIGGER patient_totals_update AFTER UPDATE ON patients BEGIN "
    "UPDATE patient_totals SET "
    "active = active - (old.deleted_at IS NULL) + (new.deleted_at IS NULL), "
    "deleted = deleted - (old.deleted_at IS NOT NULL) + (new.deleted_at IS NOT NULL), "
    "revision = revision + 1; END",
]
POSTGRES_TRIGGERS = [
    "CREATE INDEX ix_patients_name_search ON patients "
    "USING gin (to_tsvector('simple', name_search)) WHERE deleted_at IS NULL",
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
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_search", sa.String(400), nullable=False),
        sa.Column("age", sa.Integer, nullable=False),
        sa.Column("disease", sa.String(200)),
        sa.Column("gender", sa.String(16)),
        sa.Column("date_of_birth", sa.Date),
        sa.Column("phone", sa.String(40)),
        sa.Column("email", sa.String(254)),
        sa.Column("notes", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("age BETWEEN 0 AND 150", name="ck_patients_age"),
        sa.CheckConstraint(
            "gender IN ('male', 'female', 'other', 'unknown')", name="ck_patients_gender"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_patients_name", "patients", ["name", "id"])
    op.create_index("ix_patients_age", "patients", ["age", "id"])
    op.create_index("ix_patients_created_at", "patients", ["created_at", "id"])
    op.create_index("ix_patients_updated_at", "patients", ["updated_at", "id"])
    # Partial on the patients that are not deleted, so a filtered count reads the index alone.
    for name, columns in (("disease", [sa.text("lower(disease)")]), ("gender", ["gender"])):
        op.create_index(
            f"ix_patients_{name}",
            "patients",
            columns,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
    op.create_index(
        "ix_patients_deleted_at",
        "patients",
        ["deleted_at"],
        sqlite_where=sa.text("deleted_at IS NOT NULL"),
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )
    totals = op.create_table(
        "patient_totals",
        sa.Column("id", sa.Integer, sa.CheckConstraint("id = 1"), primary_key=True),
        sa.Column("active", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(totals, [{"id": 1, "active": 0, "deleted": 0, "revision": 0}])
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_TRIGGERS if sqlite else POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE patients_fts")
    else:
        op.execute("DROP FUNCTION patient_totals_track CASCADE")
    op.drop_table("patient_totals")
    op.drop_table("patients")
