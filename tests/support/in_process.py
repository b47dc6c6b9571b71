"""Sensor ticks and check runs evaluated in process, on a real instance (what the daemon does)."""

from __future__ import annotations

import dagster as dg

from platform_assets.definitions import ASSETS, defs
from platform_assets.schedules import rds_checks_job
from resources.alerts import AlertNotifier
from tests.support.webhook import Receiver


def tick(instance, resources: dict, cursor: str | None) -> dg.SensorResult:
    sensor = defs.resolve_sensor_def("lake_change_sensor")
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"lake": resources["lake"], "serving": resources["serving"]},
    )
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def decided(result: dg.SensorResult) -> dict[str, str]:
    """table -> the decision recorded on its RDS asset this tick (only changes are recorded)."""
    return {
        e.asset_key.path[-1]: e.metadata["sensor_decision"].value
        for e in result.asset_events
        if isinstance(e, dg.AssetObservation)
    }


def others(result: dg.SensorResult) -> list:
    """The tick's events besides its decisions."""
    return [e for e in result.asset_events if not isinstance(e, dg.AssetObservation)]


def alert_tick(instance, receiver: Receiver, cursor: str | None) -> str:
    sensor = defs.resolve_sensor_def("check_alert_sensor")
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"alerts": AlertNotifier(webhook_url=receiver.url)},
    )
    result = sensor(context)
    assert result.run_requests == []
    return result.cursor


def run_rds_checks(resources: dict, instance) -> dg.ExecuteInProcessResult:
    """The `rds_gold_checks` job (what the 10-minute schedule runs): every RDS check, no sync."""
    job = dg.Definitions(assets=ASSETS, jobs=[rds_checks_job], resources=resources).resolve_job_def(
        rds_checks_job.name
    )
    return job.execute_in_process(instance=instance)


def failed_checks(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        check_name(e.asset_key.path[-1], e.check_name)
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }


def check_name(table: str, check: str) -> str:
    return f"rds/gold/{table}:{check}"


def by_check(messages: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for m in messages:
        grouped.setdefault(m["fields"].get("check") or m["fields"].get("asset"), []).append(m)
    return grouped
