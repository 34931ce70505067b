"""The PostgreSQL role the service runs as: it reads and writes rows, and nothing more.

Migrations run as the owner of the tables (the role in the migrate service's URL). The app
connects as a separate login role that may not alter, drop or truncate a table, create or
drop a trigger, or update and delete audit rows: the append-only guard of the audit trail
cannot be lifted through the app's own connection (docs/audit-threat-model.md)."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text


class RoleError(RuntimeError):
    pass


GRANTS = (
    "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}",
    "REVOKE CREATE ON SCHEMA public FROM {role}",
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "REVOKE UPDATE, DELETE ON audit_events FROM {role}",
    "REVOKE UPDATE, DELETE ON audit_disclosures FROM {role}",
    "REVOKE INSERT, DELETE ON audit_chain FROM {role}",
    "REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
)


def grant_app_role(engine: Engine, role: str, password: str | None = None) -> None:
    """Give ``role`` what the service needs on the current schema (creating the login role,
    with ``password``, if it does not exist). Run by the owner after every migration."""
    if engine.dialect.name != "postgresql":
        raise RoleError("an app role is for PostgreSQL; SQLite has no roles")
    with engine.begin() as conn:
        found = conn.execute(
            text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = :role"),
            {"role": role},
        ).first()
        if found is None:
            if not password:
                raise RoleError(
                    f"role {role!r} does not exist: set HEALTHCARE_APP_ROLE_PASSWORD to create it"
                )
            _run(conn, "CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L",
                 role, password)  # fmt: skip
        elif found[0]:
            raise RoleError(f"role {role!r} is a superuser: the app must run as a plain role")
        elif password:
            _run(conn, "ALTER ROLE %I PASSWORD %L", role, password)
        if _owns_tables(conn, role):
            raise RoleError(f"role {role!r} owns the tables: use the owner for migrations only")
        for grant in GRANTS:
            _run(conn, grant.format(role="%I"), role)


def _owns_tables(conn: Connection, role: str) -> bool:
    owned = text("SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tableowner = :role")
    return conn.execute(owned, {"role": role}).first() is not None


def _run(conn: Connection, template: str, *values: str) -> None:
    """A statement with identifiers and literals quoted by PostgreSQL's own ``format``."""
    placeholders = ", ".join(f"CAST(:v{i} AS text)" for i in range(len(values)))
    statement = conn.execute(
        text(f"SELECT format(:template, {placeholders})"),
        {"template": template, **{f"v{i}": value for i, value in enumerate(values)}},
    ).scalar_one()
    conn.exec_driver_sql(statement.replace("%", "%%"))
