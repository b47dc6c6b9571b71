"""How an `in_sync_with_lake` evaluation reads, whoever records it (a run or the sensor)."""

from __future__ import annotations

import dagster as dg

from platform_assets.insync import TableStatus


def severity(status: TableStatus) -> dg.AssetCheckSeverity:
    """WARN while the lag is within the spec's tolerance, ERROR beyond or for a damaged copy."""
    return dg.AssetCheckSeverity.WARN if status.severity == "warn" else dg.AssetCheckSeverity.ERROR


def metadata(status: TableStatus) -> dict:
    return {
        "lake_version": status.lake_version or "none",
        "rds_version": status.rds_version or "none",
        "lag_seconds": status.lag_seconds,
        "lag_tolerance_seconds": status.lag_tolerance_seconds,
        "reason": status.reason,
    }
