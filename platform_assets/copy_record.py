"""What `lake_change_sensor` records about an RDS copy, so the UI tells the truth between runs.

- Lag within one tick: when the in-sync rule says a copy does not hold the lake's state, a
  runless failing `in_sync_with_lake` evaluation (WARN within the spec's lag tolerance, ERROR
  beyond or for a damaged copy) is recorded before the sync run even starts; a passing one when
  the copy is back in sync and the latest recorded evaluation still fails (e.g. a `goldctl sync`
  outside Dagster). Only transitions are recorded, judged against the latest *completed*
  evaluation, so a tick every 15 s adds nothing while the state holds.
- What the UI shows is the latest *planned* execution: while a run's planned check is in progress
  it shows a spinner, and after a run failed before judging (bad settings, database down) it
  shows "execution failed". So a lag is recorded again over a spinner, and after a failed run the
  copy's real state is recorded (its checks judged, the copy the ledger holds re-asserted), so a
  failure that never touched a healthy copy leaves it green within one tick.
- An honest first run: an instance that never synced a copy the ledger holds (a fresh
  `dagster dev` after a CLI build on a temporary instance, or a `goldctl sync`) records a runless
  materialization with the ledger's version and rows, then the passing evaluation above.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from platform_assets import check_history, copy_checks, insync_check
from platform_assets.insync import TableStatus, Verdict, evaluate
from platform_assets.keys import RDS_CHECKS, rds_key
from platform_assets.lake.tables import LakeTableState
from platform_assets.serving import ledger
from platform_assets.serving.locks import LockBusy
from platform_assets.specs import GOLD_TABLES, GoldTableSpec
from platform_assets.status import RdsFacts, live_row_count

if TYPE_CHECKING:
    import psycopg

    from resources.dagster_resources import ServingDatabase


IN_SYNC = "in_sync_with_lake"


def last_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, label: str) -> object:
    """A metadata value of the asset's latest materialization on this instance (or None)."""
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get(label)
    return value.value if value is not None else None


def in_sync_now(
    instance: dg.DagsterInstance, spec: GoldTableSpec, state: LakeTableState, facts: RdsFacts
) -> dg.AssetCheckEvaluation | None:
    """The `in_sync_with_lake` evaluation the UI is owed now, if it does not show it already."""
    return _in_sync_evaluation(instance, spec, evaluate(spec, state, facts, None, None))


def copy_events(
    instance: dg.DagsterInstance,
    spec: GoldTableSpec,
    state: LakeTableState,
    facts: RdsFacts,
    verdict: Verdict,
) -> list:
    """The runless events this tick owes the UI for `rds/gold/<table>` (usually none)."""
    held = None if verdict.copy_drifted else _held_copy(instance, spec, facts)
    evaluation = in_sync_now(instance, spec, state, facts)
    return [e for e in (held, evaluation) if e is not None]


def _held_copy(
    instance: dg.DagsterInstance, spec: GoldTableSpec, facts: RdsFacts
) -> dg.AssetMaterialization | None:
    row, _ = facts.ledger.get(spec.name, (None, {}))
    if row is None:
        return None
    key = rds_key(spec.name)
    recorded = last_metadata(instance, key, "lake_version")
    failed_run = _failed_since_materialized(instance, key)
    if recorded == row.lake_version and failed_run is None:
        return None
    if recorded is None:
        how = "first seen by this instance"
    elif recorded != row.lake_version:
        how = "synced outside Dagster"
    else:  # the ledger's version recorded: a run failed since (else returned above)
        how = f"run {(failed_run or '?')[:8]} failed without changing it"
    return dg.AssetMaterialization(
        asset_key=key,
        description=f"Recorded by lake_change_sensor: the copy the ledger holds, {how}.",
        metadata={
            "lake_version": row.lake_version,
            "dagster/row_count": row.row_count,
            "dagster/table_name": f"gold.{spec.name}",
            "fingerprint": row.fingerprint,
            "loaded_at": row.loaded_at.isoformat() if row.loaded_at else None,
        },
    )


def _failed_since_materialized(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The run id of a failed run that planned `key` after its last materialization (what the
    asset page shows as a failed materialization), or None."""
    planned = instance.get_latest_planned_materialization_info(key)
    if planned is None:
        return None
    latest = instance.fetch_materializations(key, limit=1).records
    if latest and latest[0].storage_id > planned.storage_id:
        return None
    run = instance.get_run_by_id(planned.run_id)
    if run is None or run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        return None
    return planned.run_id


def ui_shows(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey) -> str | None:
    """What the asset page shows for the check: its latest *planned* execution, "passed",
    "failed", "in progress" or "execution failed" (None: never executed)."""
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key])
    record = latest.get(check_key)
    if record is None:
        return None
    if record.status != AssetCheckExecutionRecordStatus.PLANNED:
        return "failed" if check_history.failed(record) else "passed"
    run = instance.get_run_by_id(record.run_id)
    if run is not None and run.status in IN_PROGRESS_RUN_STATUSES:
        return "in progress"
    return "execution failed"


def _overtaken(conn: psycopg.Connection, facts: RdsFacts, tables: Iterable[str]) -> set[str]:
    """The tables whose ledger row changed since the tick's snapshot: a sync published."""
    moved = set()
    for table in tables:
        before, _ = facts.ledger.get(table, (None, {}))
        now = ledger.read(conn, table)
        if (now and (now.lake_version, now.loaded_at)) != (
            before and (before.lake_version, before.loaded_at)
        ):
            moved.add(table)
    return moved


def record_in_sync(
    instance: dg.DagsterInstance,
    conn: psycopg.Connection,
    facts: RdsFacts,
    events: list,
    rejudge: Callable[[str], dg.AssetCheckEvaluation | None],
) -> list:
    """Writes the tick's `in_sync_with_lake` evaluations itself and returns the other events.

    A returned event is stored by the daemon after the tick returns: a red judged before a sync
    published would land after that sync's green and paint a repaired copy red (a stale lag).
    So: a red whose copy was published since the snapshot is dropped; the rest are written now,
    and then the ledger is read again. A publish after that read records its checks after ours;
    one that slipped in between is caught, and the copy is judged again on fresh facts
    (`rejudge`), that verdict written last."""
    mine = [e for e in events if isinstance(e, dg.AssetCheckEvaluation) and e.check_name == IN_SYNC]
    failing = {e.asset_key.path[-1] for e in mine if not e.passed}
    published = _overtaken(conn, facts, failing)
    written = []
    for evaluation in mine:
        table = evaluation.asset_key.path[-1]
        if evaluation.passed or table not in published:
            instance.report_runless_asset_event(evaluation)
            written.append(table)
    for table in sorted(_overtaken(conn, facts, set(written))):
        fresh = rejudge(table)
        if fresh is not None:
            instance.report_runless_asset_event(fresh)
    return [e for e in events if not any(e is m for m in mine)]


def reassert(
    instance: dg.DagsterInstance, run_id: str, results: Iterable[dg.AssetCheckResult]
) -> None:
    """A run's check verdicts recorded once more without a run where a runless evaluation (the
    sensor's lag over the run's spinner) came after the run planned its checks: the page shows
    the latest *planned* execution, so the run's verdict, stored in its older row, would stay
    hidden under the lag it just resolved. A lag the sensor writes after this is judged by
    `record_in_sync`, which reads the ledger after writing."""
    for result in results:
        if result.asset_key is None or result.check_name is None:
            continue
        key = dg.AssetCheckKey(result.asset_key, result.check_name)
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])
        record = latest.get(key)
        if record is not None and record.run_id != run_id:
            instance.report_runless_asset_event(
                copy_checks.as_evaluation(result, by=f"run {run_id[:8]}")
            )


SENSOR_LOCK_WAIT_S = 5.0  # a tick does not wait for a sync: the next tick looks again


def after_failed_run(
    instance: dg.DagsterInstance,
    spec: GoldTableSpec,
    facts: RdsFacts,
    conn: psycopg.Connection,
    serving: ServingDatabase,
) -> list:
    """For an in-sync copy: the checks a failed run left unjudged, judged now (row count,
    fingerprint, footprint; the lag is `copy_events`' job)."""
    key = rds_key(spec.name)
    stale = {
        name
        for name in RDS_CHECKS
        if name != IN_SYNC and ui_shows(instance, dg.AssetCheckKey(key, name)) == "execution failed"
    }
    if not stale:
        return []
    try:
        with conn.transaction():
            copy_checks.hold_sync_lock(conn, spec.name, SENSOR_LOCK_WAIT_S)
            held = ledger.read(conn, spec.name)  # under the lock: what the copy now claims
            rds_rows = live_row_count(conn, spec.name)
            tables = sorted({s.name for s in GOLD_TABLES} | {spec.name})
            results = list(
                copy_checks.judge_copy(conn, spec, key, held, rds_rows, serving, stale, tables)
            )
    except LockBusy:
        return []  # a sync is running: its own checks judge the copy
    return [copy_checks.as_evaluation(r) for r in results]


def _in_sync_evaluation(
    instance: dg.DagsterInstance, spec: GoldTableSpec, status: TableStatus
) -> dg.AssetCheckEvaluation | None:
    check_key = dg.AssetCheckKey(rds_key(spec.name), IN_SYNC)
    latest = check_history.latest(instance, check_key)
    severity = insync_check.severity(status)
    shown = ui_shows(instance, check_key)
    if status.in_sync:
        if shown in ("failed", "execution failed"):
            pass  # the page shows red over a copy in sync (a stale runless WARN, a failed run)
        elif shown == "in progress" or (latest is not None and not check_history.failed(latest)):
            return None  # green already, or the run in progress judges it
    elif shown in ("in progress", "execution failed"):
        pass  # the page shows no verdict: record the lag over it
    elif latest is not None and check_history.failed(latest):
        before = latest.event.asset_check_evaluation if latest.event else None
        version = before.metadata.get("lake_version") if before else None
        same = before is not None and before.severity == severity
        if same and version and version.value == status.lake_version:
            return None  # still failing the same way: nothing new to show
    return dg.AssetCheckEvaluation(
        asset_key=rds_key(spec.name),
        check_name=IN_SYNC,
        passed=status.in_sync,
        severity=severity,
        description=status.reason,
        metadata={**insync_check.metadata(status), "evaluated_by": "lake_change_sensor"},
    )
