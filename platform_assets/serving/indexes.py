"""The indexes a spec declares: on a new parent, and on live copies that predate the spec.

A new parent gets the primary key and every declared index (its units are staged with the same
ones, see units.index_ddl). A live copy built before an index was added to its spec gets the
missing index on the next sync, even when the lake did not change: an edit of
`GoldTableSpec.indexes` must reach RDS without a forced reload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from platform_assets.identifiers import quote_ident, trusted_sql
from platform_assets.serving.catalog import IndexDef
from platform_assets.serving.names import SCHEMA, fit, identifier

if TYPE_CHECKING:
    from collections.abc import Iterable

    from platform_assets.specs import GoldTableSpec


def index_name(table: str, columns: tuple[str, ...]) -> str:
    return fit(f"{table}_{'_'.join(columns)}_idx")


def _body(columns: Iterable[str]) -> str:
    return f"USING btree ({', '.join(quote_ident(c) for c in columns)})"


def spec_index_defs(spec: GoldTableSpec) -> list[IndexDef]:
    """The primary key and declared indexes of a new copy."""
    pk = IndexDef(
        fit(f"{spec.name}_pkey"), _body(spec.primary_key), True, "p", frozenset(spec.primary_key)
    )
    return [pk] + [
        IndexDef(index_name(spec.name, cols), _body(cols), False, None, frozenset(cols))
        for cols in spec.indexes
    ]


def existing(conn: psycopg.Connection, table: str) -> set[tuple[str, ...]]:
    """Key-column lists of the indexes on gold.<table>."""
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


def ensure(conn: psycopg.Connection, spec: GoldTableSpec) -> list[str]:
    """Create the declared indexes gold.<table> lacks; returns their names.

    CREATE INDEX takes a SHARE lock: dashboard readers go on, only writers wait, and the sync
    holds the table's sync lock so no publish races it. On the partitioned parent the index
    is built on every unit, and units staged later are given it too.
    """
    have = existing(conn, spec.name)
    created = []
    for cols in spec.indexes:
        if tuple(cols) not in have:
            name = index_name(spec.name, cols)
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} {}").format(
                    sql.Identifier(name), identifier(spec.name), trusted_sql(_body(cols))
                )
            )
            created.append(name)
    return created
