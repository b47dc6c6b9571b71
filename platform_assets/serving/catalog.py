"""What PostgreSQL's catalog says about the serving copies: cheap facts, no table scans.

The in-sync rule compares these facts with what the ledger recorded at publish time (a drop, a
TRUNCATE, a re-create or an ALTER by hand changes them); the publish step reads the parent's
indexes to give every new unit the same ones, and the views that hang on a column before it
changes shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg

from platform_assets.identifiers import quote_idents
from platform_assets.serving.names import SCHEMA, qualified

Columns = tuple[tuple[str, str], ...]  # (name, format_type) in table order


@dataclass(frozen=True)
class CopyFacts:
    """One live copy `gold.<table>` as the catalog describes it."""

    table: str
    oid: int
    relkind: str  # 'p' for our partitioned parents; 'r' for a plain table (older layouts)
    partition_column: str | None
    columns: Columns
    children: dict[str, str]  # attached child -> "oid:relfilenode" (a TRUNCATE changes it)


_FACTS_SQL = f"""
SELECT c.relname, c.oid, c.relkind,
    (SELECT a.attname FROM pg_partitioned_table pt
        JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
        WHERE pt.partrelid = c.oid),
    (SELECT coalesce(json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod))
                              ORDER BY a.attnum), '[]')
        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
    (SELECT coalesce(json_object_agg(k.relname, k.oid || ':' || k.relfilenode), '{{}}')
        FROM pg_inherits i JOIN pg_class k ON k.oid = i.inhrelid WHERE i.inhparent = c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = '{SCHEMA}' AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')
"""


def copy_facts(conn: psycopg.Connection, tables: list[str]) -> dict[str, CopyFacts]:
    """Facts of the live copies among `tables` (absent ones are missing from the result)."""
    facts = {}
    for name, oid, kind, part_col, cols, children in conn.execute(_FACTS_SQL, (tables,)):
        cols = json.loads(cols) if isinstance(cols, str) else cols
        children = json.loads(children) if isinstance(children, str) else children
        facts[name] = CopyFacts(
            name, int(oid), kind, part_col, tuple((c, t) for c, t in cols), dict(children)
        )
    return facts


@dataclass(frozen=True)
class IndexDef:
    """An index of the live parent, to be rebuilt on every new unit before it is attached."""

    name: str
    body: str  # "USING btree (a, b) [INCLUDE (...)] [WHERE ...]"
    unique: bool
    constraint: str | None  # 'p' primary key, 'u' unique constraint, None plain index
    columns: frozenset[str]  # every column the index reads (keys, expressions, predicate)


_INDEX_SQL = """
SELECT ic.relname, pg_get_indexdef(i.indexrelid), i.indisunique, con.contype::text,
    array(SELECT DISTINCT a.attname FROM pg_attribute a
          WHERE a.attrelid = i.indrelid AND a.attnum > 0 AND NOT a.attisdropped AND (
              a.attnum = ANY(i.indkey::int2[])
              OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                         AND d.objid = i.indexrelid AND d.refobjid = i.indrelid
                         AND d.refobjsubid = a.attnum)))
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
WHERE i.indrelid = %s::oid
ORDER BY ic.relname
"""


def parent_indexes(conn: psycopg.Connection, parent: CopyFacts) -> list[IndexDef]:
    """The indexes of the live parent `parent` (as this run's catalog read found it)."""
    rows = conn.execute(_INDEX_SQL, (parent.oid,)).fetchall()
    quoted = quote_idents([name for name, *_ in rows])
    found = []
    for (name, definition, unique, contype, cols), index in zip(rows, quoted, strict=True):
        head = f"CREATE {'UNIQUE ' if unique else ''}INDEX {index} ON "
        body = definition[definition.index(" USING ", len(head)) + 1 :]
        found.append(IndexDef(name, body, unique, contype, frozenset(cols)))
    return found


_VIEWS_SQL = """
SELECT DISTINCT v.oid::regclass::text AS view, a.attname
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class
LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.refobjid = %s::regclass AND v.oid <> d.refobjid
ORDER BY 1, 2
"""


def dependent_views(conn: psycopg.Connection, table: str) -> dict[str, set[str]]:
    """Views (any schema, materialized too) on `gold.<table>` -> the columns each one reads."""
    views: dict[str, set[str]] = {}
    for view, column in conn.execute(_VIEWS_SQL, (qualified(table),)):
        columns = views.setdefault(view, set())
        if column is not None:  # None: the view depends on the table as a whole
            columns.add(column)
    return views
