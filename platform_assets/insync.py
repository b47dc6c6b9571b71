"""The one rule for "the RDS copy is in sync with the lake", with its numbers.

`judge` says whether a copy is in sync, and if not why, in one line a person can act on;
`evaluate` adds the numbers every surface shows: the lag (how long the lake has held a state RDS
lacks, on the platform's clock), the spec's lag tolerance and the severity (WARN while only
behind within the tolerance; ERROR beyond it, for a copy damaged by hand, a refused sync or a
lake that cannot be read). `goldctl status`, `lake_change_sensor`, the protocol's no-op test,
the RDS checks and the dashboard badge all judge by these two; `status.py` reads the facts they
judge (one snapshot) and `insync_check.py` is how a Dagster check shows the result.

A copy is in sync when the ledger holds the lake's current state AND the live copy is the one
the ledger recorded at publish time: the same parent table, the same columns, and every unit
(month, or the whole table) the same relation with the same storage (`oid:relfilenode`). A drop,
TRUNCATE, re-create or ALTER by hand changes these catalog facts, so it is caught without
scanning a row; a DELETE by hand is left to the fingerprint check.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from platform_assets.serving import heads
from platform_assets.serving.catalog import CopyFacts
from platform_assets.serving.ledger import LedgerRow, Refusal
from platform_assets.serving.names import unit_children

if TYPE_CHECKING:
    from platform_assets.lake.tables import LakeFault, LakeTableState
    from platform_assets.specs import GoldTableSpec
    from platform_assets.status import RdsFacts


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


@dataclass(frozen=True)
class TableStatus:
    table: str
    lake_version: str | None
    rds_version: str | None
    lake_rows: int | None
    rds_rows: int | None
    lake_created_at: str | None
    rds_loaded_at: str | None
    lag_seconds: float
    in_sync: bool
    severity: str  # "ok" | "warn" (behind, within tolerance) | "error" | "foreign" (not ours)
    lag_tolerance_seconds: float
    reason: str  # the in-sync rule's verdict, one line
    lake_moved_at: str | None = None  # when the lake left the copy's state (platform clock)
    clock_skew: str | None = None  # the lake's created_at cannot be true on our clock
    owner: str | None = None  # the deployment that owns the copy
    waiting: str | None = None  # why no sync has landed: pending | refused | failing

    def to_dict(self) -> dict:
        return asdict(self)


def lag_tolerance_s(spec: GoldTableSpec) -> float:
    """The spec's lag tolerance; `GOLD_LAG_TOLERANCE_S` overrides it for every table (a drill or
    benchmarks/alerts.py, which needs a lag past tolerance within minutes)."""
    override = os.environ.get("GOLD_LAG_TOLERANCE_S")
    return float(override) if override else spec.lag_tolerance.total_seconds()


def evaluate(
    spec: GoldTableSpec,
    state: LakeTableState | None,
    facts: RdsFacts,
    lake_rows: int | None,
    rds_rows: int | None,
    now: datetime | None = None,
) -> TableStatus:
    now = now or facts.now or datetime.now(UTC)
    verdict = facts.verdict(spec.name, state)
    row, _ = facts.ledger.get(spec.name, (None, {}))
    owner = facts.owners.get(spec.name)
    tolerance = lag_tolerance_s(spec)
    lag, moved_at, waiting = 0.0, None, None
    if verdict.lake_behind and state is not None and not verdict.in_sync:
        moved_at = facts.lake_moved_at(spec.name, state.state_id)
        lag = max(0.0, (now - moved_at).total_seconds())
        waiting = facts.waiting(spec.name, state.state_id)
    if verdict.in_sync:
        severity = "ok"
    elif verdict.owner is not None and state is None:
        severity = "foreign"  # another deployment's copy of a table our lake does not have
    elif state is None or verdict.copy_drifted or verdict.owner is not None:
        severity = "error"
    elif waiting == "refused":
        severity = "error"  # no sync comes until a person acts or the lake changes
    else:
        severity = "warn" if lag < tolerance else "error"  # a tolerance of 0 tolerates none
    return TableStatus(
        table=spec.name,
        lake_version=state.state_id if state else None,
        rds_version=row.lake_version if row else None,
        lake_rows=lake_rows,
        rds_rows=rds_rows,
        lake_created_at=state.created_at.isoformat() if state else None,
        rds_loaded_at=row.loaded_at.isoformat() if row and row.loaded_at else None,
        lag_seconds=round(lag, 1),
        in_sync=verdict.in_sync,
        severity=severity,
        lag_tolerance_seconds=tolerance,
        reason=verdict.reason,
        lake_moved_at=moved_at.isoformat() if moved_at else None,
        clock_skew=heads.clock_skew(state.state_id, state.created_at, now) if state else None,
        owner=owner.deployment if owner else None,
        waiting=waiting,
    )


def faulted(
    spec: GoldTableSpec, facts: RdsFacts, fault: LakeFault, rds_rows: int | None
) -> TableStatus:
    """The status of a table whose lake location cannot be read: not in sync, with the fault."""
    row, _ = facts.ledger.get(spec.name, (None, {}))
    return TableStatus(
        table=spec.name,
        lake_version=None,
        rds_version=row.lake_version if row else None,
        lake_rows=None,
        rds_rows=rds_rows,
        lake_created_at=None,
        rds_loaded_at=row.loaded_at.isoformat() if row and row.loaded_at else None,
        lag_seconds=0.0,
        in_sync=False,
        severity="error",
        lag_tolerance_seconds=lag_tolerance_s(spec),
        reason=str(fault),
    )
