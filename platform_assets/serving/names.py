"""Where the serving copies live and what their parts are called, written once.

Every copy is a stable partitioned parent `gold.<table>`; its *units* (one month of a partitioned
spec, or the whole table as one default partition) are child tables loaded in the staging schema
`gold_stage` under their final names and moved into `gold` when published. PostgreSQL cuts names
at 63 bytes, so every generated name goes through `fit`, which keeps long names unique.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


def identifiers(names: Iterable[str], schema: str = SCHEMA) -> list[sql.Identifier]:
    """`identifier` of each name (a statement's tables, in one call)."""
    return [identifier(name, schema) for name in names]


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


@dataclass(frozen=True)
class Child:
    """The names of one unit's child table: staged in `gold_stage`, live in `gold`."""

    name: str  # `unit_child`
    staged: sql.Identifier
    live: sql.Identifier
    month_check: str  # its month CHECK constraint (lets ATTACH skip its validation scan)


def unit_children(table: str, units: Iterable[str]) -> dict[str, Child]:
    """unit key -> its child table's names, for all of a run's units in one call."""
    children = {unit: unit_child(table, unit) for unit in units}
    return {
        unit: Child(
            name, identifier(name, STAGE_SCHEMA), identifier(name), index_name(name, "month")
        )
        for unit, name in children.items()
    }


def index_name(relation: str, suffix: str) -> str:
    return fit(f"{relation}_{suffix}")


def index_names(relations: Iterable[str], suffixes: Sequence[str]) -> dict[str, list[str]]:
    """relation -> `index_name` of each suffix: a run's staged indexes named in one call."""
    return {r: [index_name(r, s) for s in suffixes] for r in relations}


def lock_key(table: str) -> str:
    """Advisory-lock key: one sync per table at a time."""
    return f"gold-sync:{table}"


def lock_application(table: str) -> str:
    """The application_name of the connection holding `table`'s sync lock (who holds it)."""
    return fit(lock_key(table))


def stage_comment(table: str) -> str:
    """The comment that marks a staging table as `table`'s, so leftovers are found exactly."""
    return f"gold-sync:{table}"


@dataclass(frozen=True)
class CopyNames:
    """Every name one sync of `table` uses besides its units', made once and handed forward."""

    table: str
    live: sql.Identifier  # gold.<table>
    live_text: str  # the same as SQL text (a regclass to look up)
    stage: str  # the staging parent, in gold_stage
    staging: sql.Identifier
    staging_text: str  # the staging parent as SQL text (the checksum statement's relation)
    comment: str  # `stage_comment`
    lock_application: str  # the sync lock connection's application_name (who holds it)


def copy_names(table: str) -> CopyNames:
    stage = fit(f"{table}__stage")
    return CopyNames(
        table=table,
        live=identifier(table),
        live_text=qualified(table),
        stage=stage,
        staging=identifier(stage, STAGE_SCHEMA),
        staging_text=qualified(stage, STAGE_SCHEMA),
        comment=stage_comment(table),
        lock_application=lock_application(table),
    )
