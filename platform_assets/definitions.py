"""The Dagster code location: Bronze -> Silver -> Gold (lake) -> Gold (RDS)."""

import dagster as dg

from platform_assets.gold_assets import build_gold_assets
from platform_assets.lake_assets import bronze_assets, silver_assets
from platform_assets.settings import build_resources

defs = dg.Definitions(
    assets=[*bronze_assets, *silver_assets, *build_gold_assets()],
    resources=build_resources(),
)
