"""Which assets an in-progress run is building, syncing or checking.

`lake_change_sensor` leaves those tables alone (a run's new lake version is not on the instance
until the run stores it) and the check schedule skips them (the run's own checks judge them):
two runs judging one copy at once is how a stale red evaluation could land after a green one.

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


def past_deadline(instance: dg.DagsterInstance, record: RunRecord, now: float | None = None):
    """True for a run that has run (or ran, until it ended) longer than its deadline: stuck,
    or ended by run monitoring for it."""
    if record.dagster_run.status == dg.DagsterRunStatus.QUEUED:
        return False
    since = record.start_time or record.create_timestamp.timestamp()
    until = record.end_time or now or time.time()
    return until - since > deadline_s(instance, record.dagster_run)


def active_asset_keys(instance: dg.DagsterInstance) -> set[dg.AssetKey]:
    records = instance.get_run_records(
        filters=RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)), limit=50
    )
    runs = [r.dagster_run for r in records if not overdue(instance, r)]
    keys = {key for run in runs for key in (run.asset_selection or ())}
    return keys | {c.asset_key for run in runs for c in (run.asset_check_selection or ())}
