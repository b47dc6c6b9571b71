"""Orphans: a copy in `gold` or ledger rows that no spec of this deployment declares.

A Gold table removed or renamed in the code leaves its copy and ledger rows behind. They are
reported (`goldctl status` lists each with its age and exits non-zero; `lake_change_sensor`
logs each once), the dashboard role loses SELECT on the copy (revoked, not dropped: nothing is
lost by accident), and only `goldctl drop-orphan TABLE` removes one, with its ledger rows. A
copy another deployment owns is that deployment's business, never our orphan.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import psycopg
from psycopg import errors, sql

from platform_assets.serving import ledger, ownership
from platform_assets.serving.names import PLATFORM_SCHEMA, SCHEMA, identifier, qualified
from resources.serving_db import one_row


@dataclass(frozen=True)
class Orphan:
    table: str
    has_copy: bool  # gold.<table> exists
    ledger_rows: int  # its rows in platform.sync_ledger
    last_synced_at: datetime | None
    first_seen_at: datetime | None  # when the platform first reported it (None: not yet)
    age_seconds: float  # since its last sync (or since first reported, without a ledger row)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        what = " and ".join(
            w
            for w in (
                f"copy gold.{self.table}" if self.has_copy else "",
                f"{self.ledger_rows} ledger row(s)" if self.ledger_rows else "",
            )
            if w
        )
        return (
            f"orphan {self.table}: {what} that no spec declares, last synced "
            f"{self.age_seconds:.0f} s ago; the dashboard role may not read it. Remove it with "
            f"`goldctl drop-orphan {self.table}`"
        )


_FIND_SQL = f"""
WITH copies AS (
    SELECT c.relname AS table_name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = '{SCHEMA}' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
), rows AS (
    SELECT table_name, count(*) AS n, max(loaded_at) FILTER (WHERE partition_key = '') AS synced
    FROM {PLATFORM_SCHEMA}.sync_ledger GROUP BY table_name
), names AS (SELECT table_name FROM copies UNION SELECT table_name FROM rows)
SELECT names.table_name, copies.table_name IS NOT NULL, coalesce(rows.n, 0), rows.synced,
    o.first_seen_at, now()
FROM names
LEFT JOIN copies USING (table_name) LEFT JOIN rows USING (table_name)
LEFT JOIN {PLATFORM_SCHEMA}.orphans o USING (table_name)
WHERE NOT names.table_name = ANY(%s)
ORDER BY 1
"""


def find(
    conn: psycopg.Connection, declared: list[str], owners: dict, me: ownership.Deployment | None
) -> list[Orphan]:
    """The orphans of deployment `me` (read-only: fits in a snapshot read)."""
    if not ledger.platform_table_exists(conn, "orphans"):
        return []
    found = []
    for table, has_copy, n, synced, first_seen, now in conn.execute(_FIND_SQL, (list(declared),)):
        if ownership.foreign_owner(owners.get(table), me) is not None:
            continue
        since = synced or first_seen or now
        found.append(Orphan(table, has_copy, n, synced, first_seen, (now - since).total_seconds()))
    return found


def notice(
    conn: psycopg.Connection, found: list[Orphan], dashboard_role: str, declared: list[str]
) -> None:
    """Record `found` as orphans and revoke the dashboard role's SELECT on their copies; give
    it back to a copy that a spec declares again."""
    if not ledger.platform_table_exists(conn, "orphans"):
        return
    role = sql.Identifier(dashboard_role)
    with conn.transaction():
        conn.execute(
            f"INSERT INTO {PLATFORM_SCHEMA}.orphans (table_name) SELECT unnest(%s::text[]) "
            "ON CONFLICT DO NOTHING",
            ([o.table for o in found],),
        )
        back = conn.execute(
            f"DELETE FROM {PLATFORM_SCHEMA}.orphans WHERE table_name = ANY(%s) "
            "RETURNING table_name",
            (list(declared),),
        ).fetchall()
        for o in found:
            if o.has_copy and _can_read(conn, dashboard_role, o.table):
                conn.execute(
                    sql.SQL("REVOKE SELECT ON {} FROM {}").format(identifier(o.table), role)
                )
        for (table,) in back:
            if one_row(conn.execute("SELECT to_regclass(%s)", (qualified(table),)))[0]:
                conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(identifier(table), role))


def _can_read(conn: psycopg.Connection, role: str, table: str) -> bool:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if not exists:
        return False
    return one_row(
        conn.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (role, qualified(table)))
    )[0]


def first_sensor_log(conn: psycopg.Connection, found: list[Orphan]) -> list[str]:
    """The orphans `lake_change_sensor` has not logged yet, marked logged now."""
    rows = conn.execute(
        f"UPDATE {PLATFORM_SCHEMA}.orphans SET sensor_logged_at = now() "
        "WHERE sensor_logged_at IS NULL AND table_name = ANY(%s) RETURNING table_name",
        ([o.table for o in found],),
    ).fetchall()
    return sorted(t for (t,) in rows)


class NotAnOrphan(ValueError):
    """`drop-orphan` was asked for a table that is declared, foreign or absent."""


def drop(
    conn: psycopg.Connection, table: str, declared: list[str], me: ownership.Deployment
) -> Orphan:
    """Drop the orphan `table`: its copy and its rows in the ledger, refusals, heads, owners
    (history stays, as an audit). Views on the copy block it: they are named, nothing drops."""
    if table in declared:
        raise NotAnOrphan(f"gold.{table} is declared by a spec: not an orphan, nothing dropped")
    owner = ownership.foreign_owner(ownership.read_owners(conn).get(table), me)
    if owner is not None:
        raise NotAnOrphan(
            f"gold.{table} belongs to {owner.describe()}: not this deployment's orphan, "
            "nothing dropped"
        )
    found = {o.table: o for o in find(conn, declared, {}, None)}
    if table not in found:
        raise NotAnOrphan(f"no orphan named {table!r} (no copy gold.{table}, no ledger rows)")
    try:
        with conn.transaction():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(identifier(table)))
            for ledger_table in ("sync_ledger", "sync_refusals", "lake_heads", "copy_owners"):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE table_name = %s").format(
                        identifier(ledger_table, PLATFORM_SCHEMA)
                    ),
                    (table,),
                )
            conn.execute(f"DELETE FROM {PLATFORM_SCHEMA}.orphans WHERE table_name = %s", (table,))
    except errors.DependentObjectsStillExist as exc:
        detail = (exc.diag.message_detail or "").replace("\n", "; ")
        raise NotAnOrphan(
            f"gold.{table} was not dropped: {detail or exc.diag.message_primary}. Drop or move "
            "those objects first"
        ) from None
    return found[table]


__all__ = ["NotAnOrphan", "Orphan", "drop", "find", "first_sensor_log", "notice"]
