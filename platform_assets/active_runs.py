"""Which assets an in-progress run is building, syncing or checking.

`lake_change_sensor` leaves those tables alone (a run's new lake version is not on the instance
until the run stores it) and the check schedule skips them (the run's own checks judge them):
two runs judging one copy at once is how a stale red evaluation could land after a green one.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES, RunsFilter


def active_asset_keys(instance: dg.DagsterInstance) -> set[dg.AssetKey]:
    runs = instance.get_runs(filters=RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)), limit=50)
    keys = {key for run in runs for key in (run.asset_selection or ())}
    return keys | {c.asset_key for run in runs for c in (run.asset_check_selection or ())}
