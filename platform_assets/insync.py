"""The one rule for "the RDS copy is in sync with the lake", used by every surface.

`goldctl status`, `lake_change_sensor`, the protocol's no-op test, the RDS checks and the
dashboard badge all call `judge`. A copy is in sync when the ledger holds the lake's current
state AND the live copy is the one the ledger recorded at publish time: the same parent table,
the same columns, and every unit (month, or the whole table) the same relation with the same
storage (`oid:relfilenode`). A drop, TRUNCATE, re-create or ALTER by hand changes these catalog
facts, so it is caught without scanning a row; a DELETE by hand is left to the fingerprint check.
"""

from __future__ import annotations

from dataclasses import dataclass

from platform_assets.serving.catalog import CopyFacts
from platform_assets.serving.ledger import LedgerRow, Refusal
from platform_assets.serving.names import unit_children


@dataclass(frozen=True)
class Verdict:
    in_sync: bool
    reason: str  # one line a person can act on
    lake_behind: bool = False  # the ledger does not hold the lake's current state
    copy_drifted: bool = False  # the live copy is not the one the ledger recorded
    drifted_units: tuple[str, ...] = ()  # units whose child is missing or was rewritten
    extra_children: tuple[str, ...] = ()  # partitions attached by hand
    owner: str | None = None  # another deployment owns the copy: this one does not sync it


def copy_drift(
    table: str, row: LedgerRow, units: dict[str, LedgerRow], facts: CopyFacts | None
) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """(what is wrong with the live copy or None, drifted unit keys, extra children)."""
    if facts is None:
        return f"gold.{table} is missing (dropped by hand?)", tuple(units), ()
    if facts.relkind != "p" or row.relation_id != str(facts.oid):
        return f"gold.{table} is not the table the platform published (re-created by hand?)", (), ()
    published = tuple(tuple(c) for c in row.columns)
    if published != facts.columns:
        changed = sorted(set(published) ^ set(facts.columns))
        names = sorted({c for c, _ in changed})
        return f"gold.{table} columns were altered by hand ({', '.join(names)})", (), ()
    expected = {child.name: key for key, child in unit_children(table, units).items()}
    drifted = tuple(
        sorted(
            key
            for child, key in expected.items()
            if facts.children.get(child) != units[key].relation_id
        )
    )
    extra = tuple(sorted(set(facts.children) - set(expected)))
    if drifted:
        what = "the whole table" if drifted == ("*",) else f"month(s) {', '.join(drifted[:6])}"
        return f"gold.{table}: {what} dropped, truncated or rewritten by hand", drifted, extra
    if extra:
        return f"gold.{table} has partitions attached by hand: {', '.join(extra)}", (), extra
    return None, (), ()


def judge(
    table: str,
    lake_version: str | None,
    lake_token: str | None,
    row: LedgerRow | None,
    units: dict[str, LedgerRow],
    facts: CopyFacts | None,
    refusal: Refusal | None = None,
) -> Verdict:
    """Is `gold.<table>` in sync with the lake state (`lake_version`, `lake_token`)?

    `refusal` is the ledger's last refused or failed sync (`ledger.Refusal`): when it was of
    the current lake state, its reason and until when no sync comes are why the copy lags.
    """
    if lake_version is None:
        return Verdict(False, f"gold.{table} has no published version in the lake yet")
    if row is None:
        return Verdict(False, f"gold.{table} was never synced to RDS", lake_behind=True)
    problem, drifted, extra = copy_drift(table, row, units, facts)
    behind = row.lake_token != lake_token or row.lake_version != lake_version
    if problem is not None:
        return Verdict(False, problem, behind, True, drifted, extra)
    if behind:
        if refusal is not None and refusal[0] == lake_version:
            reason = f"{refusal.reason}; no sync {refusal.until()}"
        else:
            reason = f"RDS holds lake version {row.lake_version}, the lake has {lake_version}"
        return Verdict(False, reason, lake_behind=True)
    return Verdict(True, "in sync")
