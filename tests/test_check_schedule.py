"""The 10-minute check schedule leaves copies alone while a run syncs or checks them.

A check-only run that read a copy before its sync landed used to record a red evaluation after
the sync's green one (and the alert sensor, reading by record id, then lost the recovery). The
schedule from `defs`, evaluated on a real instance; the subset it asks for, run for real.
"""

from __future__ import annotations

import uuid

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun

from platform_assets.definitions import ASSETS, defs
from platform_assets.keys import RDS_CHECKS, rds_key
from platform_assets.schedules import rds_checks_job
from platform_assets.specs import GOLD_TABLES
from tests.support.lake_edits import TABLE


def evaluate(instance):
    schedule = defs.resolve_schedule_def("rds_gold_checks_every_10_min")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    data = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
    return data.run_requests, data.skip_message


def started_run(instance, keys) -> DagsterRun:
    return instance.add_run(
        DagsterRun(
            job_name="__ASSET_JOB",
            run_id=uuid.uuid4().hex,
            status=dg.DagsterRunStatus.STARTED,
            asset_selection=frozenset(keys),
        )
    )


def test_the_schedule_skips_copies_an_active_run_is_syncing(built):
    instance, resources = built
    [request], _ = evaluate(instance)
    every = {dg.AssetCheckKey(rds_key(s.name), c) for s in GOLD_TABLES for c in RDS_CHECKS}
    assert set(request.asset_check_keys) == every

    run = started_run(instance, {rds_key(TABLE)})
    [request], _ = evaluate(instance)
    asked = set(request.asset_check_keys)
    assert asked == {k for k in every if k.asset_key != rds_key(TABLE)}

    # the subset the daemon would launch runs exactly those checks, all green
    job = dg.Definitions(assets=ASSETS, jobs=[rds_checks_job], resources=resources)
    subset = job.resolve_job_def(rds_checks_job.name).get_subset(asset_check_selection=asked)
    result = subset.execute_in_process(instance=instance)
    evaluations = result.get_asset_check_evaluations()
    assert {dg.AssetCheckKey(e.asset_key, e.check_name) for e in evaluations} == asked
    assert all(e.passed for e in evaluations)

    instance.report_run_failed(run)
    started_run(instance, {rds_key(s.name) for s in GOLD_TABLES})
    requests, skipped = evaluate(instance)
    assert requests == [] and "being synced" in skipped
