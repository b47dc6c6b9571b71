"""Where the serving copies live and what their parts are called, written once.

Every copy is a stable partitioned parent `gold.<table>`; its *units* (one month of a partitioned
spec, or the whole table as one default partition) are child tables loaded in the staging schema
`gold_stage` under their final names and moved into `gold` when published. PostgreSQL cuts names
at 63 bytes, so every generated name goes through `fit`, which keeps long names unique.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from psycopg import sql

from platform_assets.identifiers import quote_qualified

SCHEMA = "gold"  # the serving copies, what the dashboard and analysts read
STAGE_SCHEMA = "gold_stage"  # units being loaded; never read by anyone else
PLATFORM_SCHEMA = "platform"  # the ledger
WHOLE = "*"  # the unit key of a table loaded as one unit (a default partition)
MAX_IDENT = 63  # NAMEDATALEN - 1


def qualified(name: str, schema: str = SCHEMA) -> str:
    return quote_qualified(schema, name)


def identifier(name: str, schema: str = SCHEMA) -> sql.Identifier:
    """`schema.name` for SQL composed with psycopg.sql (it quotes as `qualified` does)."""
    return sql.Identifier(schema, name)


def fit(name: str) -> str:
    """`name` if PostgreSQL keeps it whole, else a prefix plus a hash of the full name."""
    if len(name.encode()) <= MAX_IDENT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    prefix = name.encode()[: MAX_IDENT - 9].decode(errors="ignore")
    return f"{prefix}_{digest}"


def unit_child(table: str, unit: str) -> str:
    """The child table holding one unit: `<table>__p201301` for a month, `<table>__all`."""
    return fit(f"{table}__all" if unit == WHOLE else f"{table}__p{unit.replace('-', '')}")


def unit_children(table: str, units: Iterable[str]) -> dict[str, str]:
    """unit key -> its child table (`unit_child`), for all of a run's units in one call."""
    return {unit: unit_child(table, unit) for unit in units}


def index_name(relation: str, suffix: str) -> str:
    return fit(f"{relation}_{suffix}")


def lock_key(table: str) -> str:
    """Advisory-lock key: one sync per table at a time."""
    return f"gold-sync:{table}"


def stage_comment(table: str) -> str:
    """The comment that marks a staging table as `table`'s, so leftovers are found exactly."""
    return f"gold-sync:{table}"
