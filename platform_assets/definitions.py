"""The Dagster code location: Bronze -> Silver -> Gold (lake) -> Gold (RDS), and what watches it."""

import dagster as dg

from platform_assets.alerting import build_check_alert_sensor
from platform_assets.backfills import reload_months_jobs
from platform_assets.gold_assets import build_gold_assets
from platform_assets.lake_assets import bronze_assets, silver_assets
from platform_assets.schedules import rds_checks_job, rds_checks_schedule
from platform_assets.sensors import lake_change_sensor
from platform_assets.settings import build_resources

ASSETS = [*bronze_assets, *silver_assets, *build_gold_assets()]

CHECK_KEYS = [key for asset in ASSETS for key in asset.check_keys]
ASSET_KEYS = [key for asset in ASSETS for key in asset.keys]

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[rds_checks_job, *reload_months_jobs],
    schedules=[rds_checks_schedule],
    sensors=[lake_change_sensor, build_check_alert_sensor(CHECK_KEYS, ASSET_KEYS)],
    resources=build_resources(),
)
