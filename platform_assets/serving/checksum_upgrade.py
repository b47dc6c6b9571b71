"""Ledger checksums written by an older fingerprint version, brought to today's without a reload.

A ledger row records the segment checksums of what was published, and `checksums` says which
fingerprint version computed them (lake/fingerprint.py VERSION; rows from before it was
kept say 1). Checksums of two versions never compare, so an upgrade must not make a healthy copy
look changed: the sync recomputes the live copy's checksums with today's algorithm and compares
them with the lake's (today's too). A unit equal to the lake gets today's checksums in its ledger
row, no data moved; a unit that differs was changed (by hand) and is reloaded as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pyarrow as pa

from platform_assets.lake import types as lake_types
from platform_assets.lake.fingerprint import Segments
from platform_assets.serving import ledger
from platform_assets.serving.ledger import LedgerRow
from platform_assets.serving.names import qualified
from platform_assets.serving.units import postgres_segments, units_of

if TYPE_CHECKING:
    from platform_assets.serving.snapshot import LakeSnapshot
    from platform_assets.specs import GoldTableSpec


def held_schema(row: LedgerRow) -> pa.Schema:
    """The lake version's columns, in the order its checksums were computed in (the copy's own
    order can differ after a column was added to it); rows written before the ledger kept that
    order fall back to the copy's."""
    columns = row.lake_columns or row.columns
    return lake_types.schema_from_postgres(columns)


def outdated(row: LedgerRow | None, units: dict[str, LedgerRow]) -> bool:
    """Does any of the table's ledger rows hold checksums of an older fingerprint version?"""
    if row is None:
        return False
    return bool(ledger.outdated_keys({"": row, **units}))


def copy_segments(conn: psycopg.Connection, spec: GoldTableSpec, row: LedgerRow) -> Segments | None:
    """The live copy's checksums by today's algorithm (None: it cannot be read as published)."""
    try:
        with conn.transaction():  # a savepoint: a failed read leaves the caller's state intact
            return postgres_segments(
                conn, qualified(spec.name), held_schema(row), spec.segment_column
            )
    except (
        psycopg.errors.UndefinedTable,
        psycopg.errors.UndefinedColumn,
        psycopg.errors.DatatypeMismatch,
    ):
        return None


def upgrade(
    conn: psycopg.Connection,
    spec: GoldTableSpec,
    snap: LakeSnapshot,
    row: LedgerRow,
    units: dict[str, LedgerRow],
    in_sync: bool,
) -> tuple[list[str], list[str]]:
    """Rewrite the outdated ledger rows whose units of the live copy equal the lake's `snap`
    (and the table row, when the copy holds `snap`'s version and all of it is equal).

    Returns (units upgraded, outdated units left: they differ from the lake and must reload)."""
    stale = sorted(ledger.outdated_keys(units))
    copy = copy_segments(conn, spec, row)
    if copy is None:
        return [], stale
    held = {k: u.expected for k, u in units_of(spec, copy).items()}
    lake = {k: u.expected for k, u in units_of(spec, snap.segments).items()}
    same = [k for k in stale if held.get(k) is not None and held.get(k) == lake.get(k)]
    rewrite = {k: lake[k] for k in same}
    if in_sync and not row.checksums_current and copy == dict(snap.segments):
        rewrite[""] = dict(snap.segments)
    if rewrite:
        with conn.transaction():
            ledger.upgrade_checksums(conn, spec.name, rewrite)
    return same, sorted(set(stale) - set(same))
