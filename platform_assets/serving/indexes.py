"""The indexes a spec declares, on staging tables and on live copies that predate the spec.

Staging tables get the primary key and every declared index before the swap. A live copy built
before an index was added to its spec gets the missing index on the next sync, even when the lake
did not change: an edit of `GoldTableSpec.indexes` must reach RDS without a forced reload.
"""

from __future__ import annotations

import psycopg

from platform_assets.serving.ledger import quote_ident as q

SCHEMA = "gold"


def index_name(table: str, columns: tuple[str, ...]) -> str:
    return f"{table}_{'_'.join(columns)}_idx"[:63]


def _create(conn: psycopg.Connection, table: str, cols: tuple[str, ...]) -> str:
    name = index_name(table, cols)
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS {q(name)} ON {q(SCHEMA)}.{q(table)} "
        f"({', '.join(q(c) for c in cols)})"
    )
    return name


def build(conn: psycopg.Connection, spec, table: str) -> None:
    """Primary key and declared indexes on a freshly loaded (staging) table."""
    conn.execute(
        f"ALTER TABLE {q(SCHEMA)}.{q(table)} ADD CONSTRAINT {q(table + '_pkey')} "
        f"PRIMARY KEY ({', '.join(q(c) for c in spec.primary_key)})"
    )
    for cols in spec.indexes:
        _create(conn, table, cols)


def existing(conn: psycopg.Connection, table: str) -> set[tuple[str, ...]]:
    """Key-column lists of the indexes on gold.<table> (on the parent if partitioned)."""
    rows = conn.execute(
        """
        SELECT array_agg(a.attname ORDER BY k.ord)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
        WHERE n.nspname = %s AND c.relname = %s
        GROUP BY i.indexrelid
        """,
        (SCHEMA, table),
    ).fetchall()
    return {tuple(cols) for (cols,) in rows}


def ensure(conn: psycopg.Connection, spec) -> list[str]:
    """Create the declared indexes gold.<table> lacks; returns their names.

    CREATE INDEX takes a SHARE lock: dashboard readers go on, only writers wait, and the sync
    holds the table's advisory lock so no swap races it. On a partitioned table the index is
    built on every month and new months' staging tables already carry it.
    """
    have = existing(conn, spec.name)
    return [_create(conn, spec.name, cols) for cols in spec.indexes if tuple(cols) not in have]
