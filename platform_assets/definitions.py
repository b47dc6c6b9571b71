"""The Dagster code location: Bronze -> Silver -> Gold (lake) -> Gold (RDS)."""

import dagster as dg

from platform_assets.gold_assets import build_gold_assets
from platform_assets.lake_assets import bronze_assets, silver_assets
from platform_assets.settings import build_resources

ASSETS = [*bronze_assets, *silver_assets, *build_gold_assets()]

defs = dg.Definitions(assets=ASSETS, resources=build_resources())
