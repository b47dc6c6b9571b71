"""Month-partitioned serving tables: only the months whose lake checksums changed are reloaded.

A partitioned spec's RDS table is `PARTITION BY RANGE (<segment_column>)` with one child per
month (`<table>__pYYYYMM`). The lake's per-month checksums (the fingerprint segments) say which
months changed; each changed month is copied into a staging table that already carries the
partition's CHECK constraint and indexes, then swapped in one short transaction
(DETACH + DROP old, ATTACH new) that also writes that month's ledger row. Readers see the old
month or the new one, never a half-loaded one; other months are untouched.
"""

from __future__ import annotations

import random
import time
from datetime import date

import psycopg
import pyarrow as pa
import pyarrow.dataset as ds
from psycopg import errors

from platform_assets.serving import ledger, loader
from platform_assets.serving.ledger import quote_ident as q
from platform_assets.serving.swap import rename_indexes

SCHEMA = "gold"


def month_bounds(month: str) -> tuple[date, date]:
    """'2013-02' -> (2013-02-01, 2013-03-01)."""
    year, mon = (int(p) for p in month.split("-"))
    start = date(year, mon, 1)
    end = date(year + (mon == 12), mon % 12 + 1, 1)
    return start, end


def child_name(table: str, month: str) -> str:
    return f"{table}__p{month.replace('-', '')}"


def is_partitioned(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (SCHEMA, table),
    ).fetchone()
    return bool(row and row[0] == "p")


def create_partitioned(
    conn: psycopg.Connection, name: str, schema: pa.Schema, column: str, months, not_null
) -> None:
    """A partitioned table `name` with one child per month (children named `<name>_pYYYYMM`)."""
    ddl = loader.create_table_ddl(SCHEMA, name, schema, not_null=not_null)
    conn.execute(f"{ddl} PARTITION BY RANGE ({q(column)})")
    for month in sorted(months):
        start, end = month_bounds(month)
        child = f"{name}_p{month.replace('-', '')}"
        conn.execute(
            f"CREATE TABLE {q(SCHEMA)}.{q(child)} PARTITION OF {q(SCHEMA)}.{q(name)} "
            f"FOR VALUES FROM ('{start}') TO ('{end}')"
        )


def rename_children(conn: psycopg.Connection, parent: str, staging: str) -> None:
    """After a full swap, give the children their canonical `<table>__pYYYYMM` names."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE n.nspname = %s AND p.relname = %s",
        (SCHEMA, parent),
    ).fetchall()
    for (child,) in rows:
        if child.startswith(f"{staging}_p"):
            new = f"{parent}__p{child[len(staging) + 2 :]}"
            conn.execute(f"ALTER TABLE {q(SCHEMA)}.{q(child)} RENAME TO {q(new)}")


def month_filter(column: str, month: str) -> ds.Expression:
    start, end = month_bounds(month)
    field = ds.field(column)
    return (field >= pa.scalar(start, pa.date32())) & (field < pa.scalar(end, pa.date32()))


def swap_partition(
    conn: psycopg.Connection,
    table: str,
    month: str,
    staging: str | None,
    grant_role: str,
    in_transaction,
    lock_timeout_ms: int,
    deadline_s: float = 120.0,
) -> int:
    """Replace (or, with staging None, remove) one month of `table` in one short transaction."""
    parent = f"{q(SCHEMA)}.{q(table)}"
    child = child_name(table, month)
    start, end = month_bounds(month)
    started, attempt = time.monotonic(), 0
    while True:
        attempt += 1
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'")
                exists = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{child}",)).fetchone()[
                    0
                ]
                if exists:
                    conn.execute(f"ALTER TABLE {parent} DETACH PARTITION {q(SCHEMA)}.{q(child)}")
                    conn.execute(f"DROP TABLE {q(SCHEMA)}.{q(child)}")
                if staging is not None:
                    conn.execute(f"ALTER TABLE {q(SCHEMA)}.{q(staging)} RENAME TO {q(child)}")
                    # The staging indexes get the child's names, so reloading the same month of
                    # the same lake state again (force, --month) can reuse the staging name.
                    rename_indexes(conn, SCHEMA, child, staging)
                    conn.execute(
                        f"ALTER TABLE {parent} ATTACH PARTITION {q(SCHEMA)}.{q(child)} "
                        f"FOR VALUES FROM ('{start}') TO ('{end}')"
                    )
                    conn.execute(f"GRANT SELECT ON {q(SCHEMA)}.{q(child)} TO {q(grant_role)}")
                in_transaction(conn)
            return attempt
        except (errors.LockNotAvailable, errors.DeadlockDetected):
            if time.monotonic() - started > deadline_s:
                raise TimeoutError(
                    f"swap of {table} partition {month} could not get its lock within "
                    f"{deadline_s:.0f}s ({attempt} attempts)"
                ) from None
            time.sleep(min(0.05 * attempt, 1.0) * (0.5 + random.random()))


def prepare_month_staging(
    conn: psycopg.Connection, spec, staging: str, schema: pa.Schema, month: str
) -> None:
    """A plain table shaped like the partition: CHECK constraint (ATTACH skips its scan) and the
    parent's indexes (ATTACH adopts them instead of building them under lock)."""
    start, end = month_bounds(month)
    col = q(spec.segment_column)
    conn.execute(loader.create_table_ddl(SCHEMA, staging, schema, not_null=spec.primary_key))
    conn.execute(
        f"ALTER TABLE {q(SCHEMA)}.{q(staging)} ADD CONSTRAINT {q(staging + '_month')} "
        f"CHECK ({col} IS NOT NULL AND {col} >= '{start}' AND {col} < '{end}')"
    )


def ledger_row(spec, month: str, state, segment, seconds: float, rows_per_s) -> ledger.LedgerRow:
    rows, checksum = segment
    return ledger.LedgerRow(
        table_name=spec.name,
        partition_key=month,
        lake_version=state.state_id,
        lake_token=state.token,
        row_count=rows,
        fingerprint=str(checksum),
        segments={month: [rows, checksum]},
        lake_created_at=state.created_at,
        loaded_at=None,
        duration_s=seconds,
        rows_per_s=rows_per_s,
    )
