"""What `lake_change_sensor` records about an RDS copy, so the UI tells the truth between runs.

- Lag within one tick: when the in-sync rule says a copy does not hold the lake's state, a
  runless failing `in_sync_with_lake` evaluation (WARN within the spec's lag tolerance, ERROR
  beyond or for a damaged copy) is recorded before the sync run even starts; a passing one when
  the copy is back in sync and the latest recorded evaluation still fails (e.g. a `goldctl sync`
  outside Dagster). Only transitions are recorded, judged against the latest *completed*
  evaluation, so a tick every 15 s adds nothing while the state holds.
- An honest first run: an instance that never synced a copy the ledger holds (a fresh
  `dagster dev` after a CLI build on a temporary instance, or a `goldctl sync`) records a runless
  materialization with the ledger's version and rows, then the passing evaluation above.
"""

from __future__ import annotations

import dagster as dg

from platform_assets import check_history, insync_check
from platform_assets.gold_assets import rds_key
from platform_assets.serving.insync import Verdict
from platform_assets.specs import GoldTableSpec
from platform_assets.status import RdsFacts, TableStatus, evaluate
from resources.lake_tables import LakeTableState

IN_SYNC = "in_sync_with_lake"


def last_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, label: str):
    """A metadata value of the asset's latest materialization on this instance (or None)."""
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get(label)
    return value.value if value is not None else None


def copy_events(
    instance: dg.DagsterInstance,
    spec: GoldTableSpec,
    state: LakeTableState,
    facts: RdsFacts,
    verdict: Verdict,
) -> list:
    """The runless events this tick owes the UI for `rds/gold/<table>` (usually none)."""
    held = None if verdict.copy_drifted else _held_copy(instance, spec, facts)
    evaluation = _in_sync_evaluation(instance, spec, evaluate(spec, state, facts, None, None))
    return [e for e in (held, evaluation) if e is not None]


def _held_copy(instance, spec: GoldTableSpec, facts: RdsFacts):
    row, _ = facts.ledger.get(spec.name, (None, {}))
    if row is None:
        return None
    key = rds_key(spec.name)
    recorded = last_metadata(instance, key, "lake_version")
    if recorded == row.lake_version:
        return None
    how = "first seen by this instance" if recorded is None else "synced outside Dagster"
    return dg.AssetMaterialization(
        asset_key=key,
        description=f"Recorded by lake_change_sensor: the copy the ledger holds, {how}.",
        metadata={
            "lake_version": row.lake_version,
            "dagster/row_count": row.row_count,
            "dagster/table_name": f"gold.{spec.name}",
            "fingerprint": row.fingerprint,
            "loaded_at": row.loaded_at.isoformat(),
        },
    )


def _in_sync_evaluation(instance, spec: GoldTableSpec, status: TableStatus):
    latest = check_history.latest(instance, dg.AssetCheckKey(rds_key(spec.name), IN_SYNC))
    severity = insync_check.severity(status)
    if status.in_sync:
        if latest is not None and not check_history.failed(latest):
            return None
    elif latest is not None and check_history.failed(latest):
        before = latest.event.asset_check_evaluation
        version = before.metadata.get("lake_version")
        if before.severity == severity and version and version.value == status.lake_version:
            return None  # still failing the same way: nothing new to show
    return dg.AssetCheckEvaluation(
        asset_key=rds_key(spec.name),
        check_name=IN_SYNC,
        passed=status.in_sync,
        severity=severity,
        description=status.reason,
        metadata={**insync_check.metadata(status), "evaluated_by": "lake_change_sensor"},
    )
