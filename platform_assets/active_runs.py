"""Which assets an in-progress run is building, syncing or checking.

`lake_change_sensor` leaves a table alone while a run *builds or syncs* it (a run's new lake
version is not on the instance until the run stores it) but not while a run only *checks* it:
the lag is recorded and the sync requested at once, and the sync waits for the check run's
reads on the table's sync lock (the checks hold it shared). The check schedule skips every busy
table (the run's own checks judge it).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES, RunsFilter


@dataclass(frozen=True)
class ActiveRun:
    run_id: str
    materializes: bool  # False: the run only evaluates the asset's checks


def active_runs(instance: dg.DagsterInstance) -> dict[dg.AssetKey, ActiveRun]:
    """Every asset an in-progress run targets, with that run (a materializing one first)."""
    runs = instance.get_runs(filters=RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)), limit=50)
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
