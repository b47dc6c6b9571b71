"""Backfills of month ranges of a partitioned RDS copy, from the UI's partitions page.

The assets themselves stay unpartitioned (see docs/DESIGN.md: `dagster asset materialize
--select '*'` refuses a selection that mixes partitioned and unpartitioned assets). Instead each
`partitioned=True` spec gets a job, `reload_<table>_months`, over its RDS asset and checks whose
config is partitioned by the months the copy holds (a dynamic partitions definition that every
sync keeps up to date). Selecting a range on the job's Partitions tab and launching a backfill
runs one sync per month with `months: [<month>]`: that month is copied from the lake again and
swapped in alone; the other months are untouched.
"""

from __future__ import annotations

import dagster as dg

from platform_assets.gold_assets.months import months_partitions
from platform_assets.keys import rds_key, rds_op_name
from platform_assets.specs import GOLD_TABLES, GoldTableSpec


def reload_months_job_name(table: str) -> str:
    return f"reload_{table}_months"


def build_reload_months_job(spec: GoldTableSpec) -> dg.UnresolvedAssetJobDefinition:
    def run_config(month: str) -> dict:
        return {"ops": {rds_op_name(spec.name): {"config": {"months": [month]}}}}

    return dg.define_asset_job(
        reload_months_job_name(spec.name),
        selection=dg.AssetSelection.assets(rds_key(spec.name)),
        config=dg.PartitionedConfig(
            partitions_def=months_partitions(spec),
            run_config_for_partition_key_fn=run_config,
        ),
        tags={"gold/table": spec.name},
        description=(
            f"Copy chosen months of gold.{spec.name} from the lake into RDS again, one run per "
            "month (Partitions tab -> Launch backfill)."
        ),
    )


reload_months_jobs = [build_reload_months_job(s) for s in GOLD_TABLES if s.partitioned]
