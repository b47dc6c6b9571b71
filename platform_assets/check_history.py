"""Check executions in the order they completed, not the order they were planned.

An execution's record id is assigned when its run *plans* the check; the evaluation lands later.
A check-only run planned after a sync run can finish first, and a runless evaluation (from
`lake_change_sensor`) can land between them, so "the latest" is the latest completion: the event
timestamp of the evaluation. The alert sensor and `lake_change_sensor` both judge by it.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

HISTORY_PAGE = 20


def completed_at(record: AssetCheckExecutionRecord) -> float:
    return record.event.timestamp if record.event else record.create_timestamp


def failed(record: AssetCheckExecutionRecord) -> bool:
    return record.status == AssetCheckExecutionRecordStatus.FAILED


def completed(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey, limit: int = HISTORY_PAGE
) -> list[AssetCheckExecutionRecord]:
    """The recent completed executions of `key`, oldest completion first."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=limit, status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
    )
    return sorted(records, key=lambda r: (completed_at(r), r.id))


def latest(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> AssetCheckExecutionRecord | None:
    records = completed(instance, key)
    return records[-1] if records else None
