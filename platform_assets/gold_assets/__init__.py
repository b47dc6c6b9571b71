"""The Gold assets, built from each `GoldTableSpec` (specs.py), one module per job.

lake_asset.py   lake/gold/<table>: Athena CTAS into a new version folder; blocking checks;
                manifest last
rds_asset.py    rds/gold/<table>: the sync protocol into RDS, then its checks
rds_checks.py   the RDS checks of a run (in-sync, row count, fingerprint, storage budget)
months.py       the months a partitioned copy holds, as its reload job's partitions
freshness.py    the freshness policy both declare
"""

from collections.abc import Iterable

import dagster as dg

from platform_assets.gold_assets.lake_asset import build_lake_asset
from platform_assets.gold_assets.rds_asset import build_rds_asset
from platform_assets.specs import GOLD_TABLES, GoldTableSpec


def build_gold_assets(specs: Iterable[GoldTableSpec] = GOLD_TABLES) -> list[dg.AssetsDefinition]:
    assets = []
    for spec in specs:
        spec.validate()
        assets += [build_lake_asset(spec), build_rds_asset(spec)]
    return assets
