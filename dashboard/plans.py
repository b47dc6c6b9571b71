"""Does PostgreSQL answer a dashboard query with its indexes? (the EXPLAIN test and benchmark)

Every scan of a Gold relation must be an Index, Index Only or Bitmap Heap scan, with one
exception: a monthly partition (`<table>__pYYYYMM`) of a month the query's period touches may be
read sequentially. The planner does so when most of its rows are needed (a period of all
carriers, or all airports): a month is a few pages, and pruning keeps every other month unread,
so what a query reads grows with the period asked for, never with the table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date

import psycopg
from psycopg import sql as pgsql

from dashboard.queries import Query
from resources.serving_db import one_row

INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan"}
PARTITION = re.compile(r"^gold\.(\w+)__p(\d{4})(\d{2})$")


def scans(plan: dict) -> Iterator[tuple[str, str]]:
    """(node type, schema.relation) of every node of a JSON plan that reads a relation."""
    if "Relation Name" in plan:
        yield plan["Node Type"], f"{plan.get('Schema', '')}.{plan['Relation Name']}"
    for child in plan.get("Plans", []):
        yield from scans(child)


def in_period(relation: str, query: Query) -> bool:
    """A monthly partition of a month the query's period touches."""
    match = PARTITION.search(relation)
    start = query.params.get("first_month", query.params.get("start"))
    end = query.params.get("end")
    if not match or start is None or end is None:
        return False
    month = date(int(match.group(2)), int(match.group(3)), 1)
    return date(start.year, start.month, 1) <= month <= end


def gold_scans(conn: psycopg.Connection, query: Query) -> tuple[list, list]:
    """(every scan of a Gold relation, the ones the rule above refuses) in the query's plan,
    EXPLAINed on `conn` (a psycopg connection) with the query's parameters."""
    explain = pgsql.SQL("EXPLAIN (FORMAT JSON, VERBOSE) ") + query.statement()
    (raw,) = one_row(conn.execute(explain, query.params))
    plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
    gold = [(t, r) for t, r in scans(plan) if r.startswith("gold.")]
    bad = [
        (t, r)
        for t, r in gold
        if t not in INDEX_SCANS and not (t == "Seq Scan" and in_period(r, query))
    ]
    return gold, bad
