"""The RDS checks also run on a schedule, so they fire when syncs stop, not only after one."""

import dagster as dg

from platform_assets.gold_assets import rds_key
from platform_assets.specs import GOLD_TABLES

rds_checks_job = dg.define_asset_job(
    "rds_gold_checks",
    selection=dg.AssetSelection.checks_for_assets(*[rds_key(s.name) for s in GOLD_TABLES]),
    description="Lag, row-count and fingerprint checks of every RDS Gold copy (no sync).",
)

rds_checks_schedule = dg.ScheduleDefinition(
    name="rds_gold_checks_every_10_min",
    job=rds_checks_job,
    cron_schedule="*/10 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
