"""The atomic swap: staging becomes live in one short transaction.

Readers see the old table or the new one, never an empty or half-loaded one. The transaction
asks for its locks with a short `lock_timeout`, so a long dashboard query makes the swap retry
instead of queueing every new reader behind it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import psycopg
from psycopg import errors

from platform_assets.serving.ledger import quote_ident

STAGE_MARK = "__stage_"


def staging_name(table: str, token: str) -> str:
    return f"{table}{STAGE_MARK}{token[:8]}"


def drop_leftovers(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    """Drop staging tables of `table` left by crashed runs (caller holds the table's lock)."""
    names = [
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND starts_with(tablename, %s)",
            (schema, f"{table}{STAGE_MARK}"),
        ).fetchall()
    ]
    for name in names:
        conn.execute(f"DROP TABLE IF EXISTS {quote_ident(schema)}.{quote_ident(name)}")
    return names


def swap_in(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    staging: str,
    grant_role: str,
    in_transaction: Callable[[psycopg.Connection], None],
    lock_timeout_ms: int = 100,
    deadline_s: float = 120.0,
) -> int:
    """Replace `schema.table` by `schema.staging`; returns how many attempts it took.

    `in_transaction` runs inside the swap transaction (the ledger write), so the ledger and the
    live table change together or not at all.
    """
    s, live, stage = quote_ident(schema), quote_ident(table), quote_ident(staging)
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'")
                # The old copy goes in the same transaction: its files are unlinked only at
                # commit, and readers blocked on it resolve the name again to the new table.
                conn.execute(f"DROP TABLE IF EXISTS {s}.{live}")
                conn.execute(f"ALTER TABLE {s}.{stage} RENAME TO {live}")
                rename_indexes(conn, schema, table, staging)
                conn.execute(f"GRANT SELECT ON {s}.{live} TO {quote_ident(grant_role)}")
                in_transaction(conn)
            return attempt
        except (errors.LockNotAvailable, errors.DeadlockDetected):
            if time.monotonic() - started > deadline_s:
                raise TimeoutError(
                    f"swap of {schema}.{table} could not get its lock within {deadline_s:.0f}s "
                    f"({attempt} attempts): a reader holds the table"
                ) from None
            time.sleep(min(0.05 * attempt, 1.0) * (0.5 + random.random()))


def rename_indexes(conn: psycopg.Connection, schema: str, table: str, staging: str) -> None:
    """Give the new live table's indexes their canonical names (`<table>_...`)."""
    rows = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
        (schema, table),
    ).fetchall()
    for (name,) in rows:
        if name.startswith(staging):
            new = table + name[len(staging) :]
            index = f"{quote_ident(schema)}.{quote_ident(name)}"
            conn.execute(f"ALTER INDEX {index} RENAME TO {quote_ident(new)}")
