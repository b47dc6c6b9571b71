"""`platform.sync_ledger`: which lake version each RDS copy holds.

One row per table (and partition), written in the swap transaction. The lag check, the alert
sensor, `goldctl status` and the dashboard badge all read this row, so they cannot disagree.
`platform.sync_history` keeps every load for audits and trend charts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

BOOTSTRAP_LOCK = 0x601D  # advisory lock key serialising DDL of concurrent first runs

DDL = """
CREATE SCHEMA IF NOT EXISTS platform;
CREATE SCHEMA IF NOT EXISTS gold;
CREATE TABLE IF NOT EXISTS platform.sync_ledger (
    table_name      text NOT NULL,
    partition_key   text NOT NULL DEFAULT '',
    lake_version    text NOT NULL,
    lake_token      text NOT NULL,
    row_count       bigint NOT NULL,
    fingerprint     text NOT NULL,
    segments        jsonb NOT NULL DEFAULT '{}'::jsonb,
    lake_created_at timestamptz NOT NULL,
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    duration_s      double precision NOT NULL,
    rows_per_s      double precision,
    PRIMARY KEY (table_name, partition_key)
);
CREATE TABLE IF NOT EXISTS platform.sync_history (
    id              bigserial PRIMARY KEY,
    table_name      text NOT NULL,
    partition_key   text NOT NULL DEFAULT '',
    lake_version    text NOT NULL,
    row_count       bigint NOT NULL,
    fingerprint     text NOT NULL,
    lake_created_at timestamptz NOT NULL,
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    duration_s      double precision NOT NULL,
    rows_per_s      double precision
);
"""


@dataclass(frozen=True)
class LedgerRow:
    table_name: str
    partition_key: str
    lake_version: str
    lake_token: str
    row_count: int
    fingerprint: str
    segments: dict
    lake_created_at: datetime
    loaded_at: datetime
    duration_s: float
    rows_per_s: float | None


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def bootstrap(conn: psycopg.Connection, dashboard_role: str) -> None:
    """Create schemas, ledger and the read-only dashboard role (idempotent, race-free)."""
    role = quote_ident(dashboard_role)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (BOOTSTRAP_LOCK,))
        conn.execute(DDL)
        exists = conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (dashboard_role,)
        ).fetchone()
        if not exists:
            conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        conn.execute(f"GRANT USAGE ON SCHEMA gold, platform TO {role}")
        conn.execute(f"GRANT SELECT ON platform.sync_ledger, platform.sync_history TO {role}")
        conn.execute(f"REVOKE CREATE ON SCHEMA public FROM {role}")


def read(conn: psycopg.Connection, table: str, partition_key: str = "") -> LedgerRow | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT * FROM platform.sync_ledger WHERE table_name = %s AND partition_key = %s",
            (table, partition_key),
        ).fetchone()
    return LedgerRow(**row) if row else None


def read_all(conn: psycopg.Connection) -> dict[str, LedgerRow]:
    """Whole-table ledger rows by table name ({} before the first sync)."""
    exists = conn.execute("SELECT to_regclass('platform.sync_ledger')").fetchone()[0]
    if exists is None:
        return {}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM platform.sync_ledger WHERE partition_key = ''").fetchall()
    return {r["table_name"]: LedgerRow(**r) for r in rows}


def write(conn: psycopg.Connection, row: LedgerRow) -> None:
    """Upsert the current row and append history (call inside the swap transaction)."""
    conn.execute(
        """
        INSERT INTO platform.sync_ledger (table_name, partition_key, lake_version, lake_token,
            row_count, fingerprint, segments, lake_created_at, loaded_at, duration_s, rows_per_s)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now(), %s, %s)
        ON CONFLICT (table_name, partition_key) DO UPDATE SET
            lake_version = EXCLUDED.lake_version, lake_token = EXCLUDED.lake_token,
            row_count = EXCLUDED.row_count, fingerprint = EXCLUDED.fingerprint,
            segments = EXCLUDED.segments, lake_created_at = EXCLUDED.lake_created_at,
            loaded_at = EXCLUDED.loaded_at, duration_s = EXCLUDED.duration_s,
            rows_per_s = EXCLUDED.rows_per_s
        """,
        (
            row.table_name,
            row.partition_key,
            row.lake_version,
            row.lake_token,
            row.row_count,
            row.fingerprint,
            Jsonb(row.segments),
            row.lake_created_at,
            row.duration_s,
            row.rows_per_s,
        ),
    )
    conn.execute(
        """
        INSERT INTO platform.sync_history (table_name, partition_key, lake_version, row_count,
            fingerprint, lake_created_at, duration_s, rows_per_s)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            row.table_name,
            row.partition_key,
            row.lake_version,
            row.row_count,
            row.fingerprint,
            row.lake_created_at,
            row.duration_s,
            row.rows_per_s,
        ),
    )


def read_partitions(conn: psycopg.Connection, table: str) -> dict[str, LedgerRow]:
    """Per-partition rows of a partitioned table, by partition key ('YYYY-MM')."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM platform.sync_ledger WHERE table_name = %s AND partition_key <> ''",
            (table,),
        ).fetchall()
    return {r["partition_key"]: LedgerRow(**r) for r in rows}


def delete_partition(conn: psycopg.Connection, table: str, partition_key: str) -> None:
    conn.execute(
        "DELETE FROM platform.sync_ledger WHERE table_name = %s AND partition_key = %s",
        (table, partition_key),
    )
