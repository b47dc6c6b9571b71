"""The dashboard's login: what it may read, and what it is denied even if it asks nicely.

Read-only is enforced by privileges, not by a setting the session can turn off: the role has
SELECT on the copies and the ledger and nothing else, and the setup takes from PUBLIC in the
serving database what every role gets by default and a reader could use to write or block:
TEMP (temporary tables, and functions in `pg_temp`), creating large objects, CREATE on
`public`. `default_transaction_read_only` is set for the role too, as a second fence. The
sync's lock is a row only the loader may lock (locks.py). A login that may not take something
away (not the database's or the functions' owner) leaves it; `exposures` lists what remains.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from platform_assets.serving.names import PLATFORM_SCHEMA, SCHEMA
from resources.serving_db import one_row

LEDGER_TABLES = (  # everything a surface needs to judge a copy (the badge reads them all)
    f"{PLATFORM_SCHEMA}.sync_ledger",
    f"{PLATFORM_SCHEMA}.sync_history",
    f"{PLATFORM_SCHEMA}.sync_refusals",
    f"{PLATFORM_SCHEMA}.lake_heads",
    f"{PLATFORM_SCHEMA}.copy_owners",
    f"{PLATFORM_SCHEMA}.orphans",
)
# Every way to create a large object (writing one needs owning it, lo_compat_privileges off).
LO_CREATORS = (
    "lo_creat(integer)",
    "lo_create(oid)",
    "lo_from_bytea(oid, bytea)",
    "lo_import(text)",
    "lo_import(text, oid)",
)


def grants(role: str) -> list[sql.Composed]:
    r = sql.Identifier(role)
    return [
        sql.SQL(f"GRANT USAGE ON SCHEMA {SCHEMA}, {PLATFORM_SCHEMA} TO {{}}").format(r),
        sql.SQL(f"GRANT SELECT ON {', '.join(LEDGER_TABLES)} TO {{}}").format(r),
        sql.SQL(f"REVOKE ALL ON {PLATFORM_SCHEMA}.sync_locks FROM PUBLIC, {{}}").format(r),
    ]


def lockdown(role: str, database: str) -> list[sql.Composed]:
    """Statements that need ownership (of the database, `public`, the functions) or CREATEROLE;
    each is tried on its own."""
    r = sql.Identifier(role)
    return [
        sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC, {}").format(
            sql.Identifier(database), r
        ),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC, {}").format(r),
        sql.SQL(f"REVOKE EXECUTE ON FUNCTION {', '.join(LO_CREATORS)} FROM PUBLIC, {{}}").format(r),
        sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(r),
    ]


def exposures(conn: psycopg.Connection, role: str) -> list[str] | None:
    """What `role` can still do besides reading (empty: locked down; None: no such role yet)."""
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
        return None
    found = []
    temp, read_only = one_row(
        conn.execute(
            "SELECT has_database_privilege(%(r)s, current_database(), 'TEMP'), "
            "coalesce((SELECT 'default_transaction_read_only=on' = ANY(s.setconfig) "
            "FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE r.rolname = %(r)s AND s.setdatabase = 0), false)",
            {"r": role},
        )
    )
    if temp:
        found.append("create temporary tables and functions (TEMP on the database)")
    if not read_only:
        found.append("sessions start read-write (default_transaction_read_only not set)")
    for fn in LO_CREATORS:
        can = conn.execute("SELECT has_function_privilege(%s, %s, 'EXECUTE')", (role, fn))
        if one_row(can)[0]:
            found.append(f"create large objects ({fn.split('(')[0]})")
    schemas = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE has_schema_privilege(%s, oid, 'CREATE') ORDER BY 1",
        (role,),
    ).fetchall()
    found += [f"create objects in schema {s}" for (s,) in schemas]
    return found


def status_line(role: str, found: list[str] | None) -> str:
    """`goldctl status`'s line about the dashboard role."""
    if found is None:
        return f"dashboard role {role}: not created yet (the first sync creates it)"
    if not found:
        return f"dashboard role {role}: read-only (no writes, temp tables, large objects, locks)"
    return (
        f"dashboard role {role}: WARN: can still {'; '.join(found)} (this login may not revoke "
        "it: README.md, 'Dashboard', says what a DBA runs)"
    )
