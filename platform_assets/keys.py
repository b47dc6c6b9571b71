"""The platform's names in Dagster: asset keys, op names and check names with what each judges.

Small on purpose: sensors, schedules, backfills and the tests need the names, not the factories
that build the assets.
"""

from __future__ import annotations

import dagster as dg

from platform_assets.serving import footprint

LAKE_CHECKS = {
    "not_empty": "The new version has at least one row.",
    "primary_key_unique": "No two rows share the primary key.",
    "primary_key_not_null": "No primary key column is NULL.",
}


RDS_CHECKS = {
    "in_sync_with_lake": "The RDS copy holds the lake's current version (WARN within the "
    "spec's lag tolerance, ERROR beyond).",
    "row_count_matches": "The copy has as many rows as the lake version the ledger says it "
    "holds (a copy only behind stays green; one changed by hand is red).",
    "fingerprint_matches": "The copy's per-month checksums equal those of the lake version the "
    "ledger says it holds (computed by the lake engine when it was built).",
    footprint.CHECK_NAME: footprint.CHECK_DESCRIPTION,
}


def rds_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["rds", "gold", table])


def rds_op_name(table: str) -> str:
    return f"rds_gold_{table}"


def lake_key(layer: str, table: str) -> dg.AssetKey:
    return dg.AssetKey(["lake", layer, table])
