"""The RDS checks also run on a schedule, so they fire when syncs stop, not only after one.

Each tick checks the copies no in-progress run is syncing or checking: a sync run's own checks
judge its copy when the sync lands, and a check-only run that read the copy before the sync
could otherwise record a red evaluation after the sync's green one.
"""

import dagster as dg

from platform_assets.active_runs import active_asset_keys
from platform_assets.keys import RDS_CHECKS, rds_key
from platform_assets.specs import GOLD_TABLES

rds_checks_job = dg.define_asset_job(
    "rds_gold_checks",
    selection=dg.AssetSelection.checks_for_assets(*[rds_key(s.name) for s in GOLD_TABLES]),
    description="Lag, row-count and fingerprint checks of every RDS Gold copy (no sync).",
)


@dg.schedule(
    name="rds_gold_checks_every_10_min",
    job=rds_checks_job,
    cron_schedule="*/10 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def rds_checks_schedule(  # noqa: ANN201 - Dagster reads a schedule's return annotation
    context: dg.ScheduleEvaluationContext,
):
    busy = active_asset_keys(context.instance)
    keys = [rds_key(s.name) for s in GOLD_TABLES if rds_key(s.name) not in busy]
    if not keys:
        return dg.SkipReason("every RDS copy is being synced or checked by a run right now")
    return dg.RunRequest(
        asset_check_keys=[dg.AssetCheckKey(key, name) for key in keys for name in RDS_CHECKS]
    )
