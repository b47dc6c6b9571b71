"""Which assets an in-progress run is building, syncing or checking.

`lake_change_sensor` leaves a table alone while a run *builds or syncs* it (a run's new lake
version is not on the instance until the run stores it) but not while a run only *checks* it:
the lag is recorded and the sync requested at once, and the sync waits for the check run's
reads on the table's sync lock (the checks hold it shared). The check schedule skips every busy
table (the run's own checks judge it).

A run past its deadline is not active, whatever its status says: a `dagster dev` or run worker
killed mid-run leaves the run STARTED for ever, and treating it as busy would block its table
(no sync, no lag record, no alert). The deadline is the one run monitoring enforces (the run's
`dagster/max_runtime` tag, else the instance's `max_runtime_seconds`, else DEFAULT_DEADLINE_S),
counted from the run's start (or creation, while it has not started). Queued runs wait on the
coordinator, not on a worker: they stay active.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import dagster as dg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES, RunRecord, RunsFilter

MAX_RUNTIME_TAG = "dagster/max_runtime"
DEFAULT_DEADLINE_S = 3600.0
SYNC_MAX_RUNTIME_ENV = "GOLD_SYNC_MAX_RUNTIME_S"
SYNC_MAX_RUNTIME_S = 1800.0


def sync_max_runtime_s() -> float:
    """The deadline of a sync run (`GOLD_SYNC_MAX_RUNTIME_S`, default 30 min)."""
    text = os.environ.get(SYNC_MAX_RUNTIME_ENV, "").strip()
    if not text:
        return SYNC_MAX_RUNTIME_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ValueError(f"{SYNC_MAX_RUNTIME_ENV}={text!r}: expected a number of seconds above 0")
    return value


def deadline_s(instance: dg.DagsterInstance, run: dg.DagsterRun) -> float:
    tagged = run.tags.get(MAX_RUNTIME_TAG)
    try:
        if tagged and float(tagged) > 0:
            return float(tagged)
    except ValueError:
        pass
    configured = instance.run_monitoring_max_runtime_seconds
    return float(configured) if configured else DEFAULT_DEADLINE_S


def overdue(instance: dg.DagsterInstance, record: RunRecord, now: float | None = None) -> bool:
    """True for a run past its deadline that has not ended (its worker is presumed dead)."""
    run = record.dagster_run
    if run.status not in IN_PROGRESS_RUN_STATUSES or run.status == dg.DagsterRunStatus.QUEUED:
        return False
    return past_deadline(instance, record, now)


def past_deadline(
    instance: dg.DagsterInstance, record: RunRecord, now: float | None = None
) -> bool:
    """True for a run that has run (or ran, until it ended) longer than its deadline: stuck,
    or ended by run monitoring for it."""
    if record.dagster_run.status == dg.DagsterRunStatus.QUEUED:
        return False
    since = record.start_time or record.create_timestamp.timestamp()
    until = record.end_time or now or time.time()
    return until - since > deadline_s(instance, record.dagster_run)


@dataclass(frozen=True)
class ActiveRun:
    run_id: str
    materializes: bool  # False: the run only evaluates the asset's checks


def active_runs(instance: dg.DagsterInstance) -> dict[dg.AssetKey, ActiveRun]:
    """Every asset an in-progress run (not past its deadline) targets, with that run (a
    materializing one first)."""
    records = instance.get_run_records(
        filters=RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)), limit=50
    )
    runs = [r.dagster_run for r in records if not overdue(instance, r)]
    found: dict[dg.AssetKey, ActiveRun] = {}
    for run in runs:
        for check in run.asset_check_selection or ():
            found.setdefault(check.asset_key, ActiveRun(run.run_id, False))
    for run in runs:
        for key in run.asset_selection or ():
            found[key] = ActiveRun(run.run_id, True)
    return found


def active_asset_keys(instance: dg.DagsterInstance) -> set[dg.AssetKey]:
    return set(active_runs(instance))
