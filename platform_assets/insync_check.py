"""How an `in_sync_with_lake` evaluation reads, whoever records it (a run or the sensor), and
the check result a run records (with the months behind and whether the lake moved on)."""

from __future__ import annotations

import dagster as dg

from platform_assets.insync import TableStatus
from platform_assets.keys import rds_key
from platform_assets.lake.tables import GoldLake, LakeFault
from platform_assets.serving import ledger, snapshot
from platform_assets.specs import GoldTableSpec
from platform_assets.status import RdsFacts


def severity(status: TableStatus) -> dg.AssetCheckSeverity:
    """WARN while the lag is within the spec's tolerance, ERROR beyond or for a damaged copy."""
    return dg.AssetCheckSeverity.WARN if status.severity == "warn" else dg.AssetCheckSeverity.ERROR


def metadata(status: TableStatus) -> dict:
    return {
        "lake_version": status.lake_version or "none",
        "rds_version": status.rds_version or "none",
        "lag_seconds": status.lag_seconds,
        "lag_tolerance_seconds": status.lag_tolerance_seconds,
        "reason": status.reason,
    }


def check_result(
    spec: GoldTableSpec,
    gold: GoldLake,
    snap: snapshot.LakeSnapshot | None,
    facts: RdsFacts,
    st: TableStatus,
) -> dg.AssetCheckResult:
    meta = metadata(st)
    if snap is not None and not st.in_sync:
        behind = _months_behind(spec, snap, facts)
        if behind:
            meta["months_behind"] = ", ".join(behind[:24])
    try:  # one listing: did the lake move on during the run?
        now = gold.current_state(spec.name)
    except LakeFault:
        now = None
    if snap is not None and now is not None and now.token != snap.state.token:
        meta["lake_moved_on_to"] = now.state_id
    return dg.AssetCheckResult(
        asset_key=rds_key(spec.name),
        check_name="in_sync_with_lake",
        passed=st.in_sync,
        severity=severity(st),
        description=st.reason,
        metadata=meta,
    )


def _months_behind(spec: GoldTableSpec, snap: snapshot.LakeSnapshot, facts: RdsFacts) -> list[str]:
    """Partitioned tables: the months whose RDS partition differs from the snapshot's."""
    if not spec.partitioned:
        return []
    _, units = facts.ledger.get(spec.name, (None, {}))
    if ledger.outdated_keys(units):
        return []  # an older fingerprint's checksums say nothing about today's months
    expected = {m: {m: v} for m, v in snap.segments.items()}  # one unit per month
    return ledger.units_behind(units, expected)
