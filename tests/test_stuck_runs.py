"""A run whose worker died blocks nothing for ever, and never publishes after its run ended.

- The sensor and the check schedule treat a run past its deadline (`dagster/max_runtime`) as
  not active: its table gets a new sync request at once (a new run key); a run within its
  deadline still holds its table (the false alarm's side). A canceled sync is requested again
  too, after the usual backoff (its run key is used up).
- A sync whose run was failed while it was staging (what happens to a step process orphaned by
  a killed run worker) does not publish: the old copy and the ledger stay, no staging is left.
The `dagster dev` kill -9 and restart is in tests/test_dagster_dev_crash.py.
"""

from __future__ import annotations

import threading
import uuid

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun

from platform_assets import retry_rule
from platform_assets.active_runs import MAX_RUNTIME_TAG, active_asset_keys, overdue
from platform_assets.keys import rds_key
from platform_assets.specs import GOLD_BY_NAME
from tests.conftest import materialize, platform_resources
from tests.support.copies import count_and_sum, ledger_row, stage_tables
from tests.support.goldctl import wait_for
from tests.support.in_process import tick
from tests.support.lake_edits import add_outside_file

WEATHER = GOLD_BY_NAME["airport_daily_weather"]


def _sync_run(instance, request, deadline_s: str) -> DagsterRun:
    """A run as the daemon would have launched it for `request`, then left STARTED."""
    return instance.add_run(
        DagsterRun(
            job_name="__ASSET_JOB",
            run_id=uuid.uuid4().hex,
            status=dg.DagsterRunStatus.STARTED,
            asset_selection=frozenset({rds_key(WEATHER.name)}),
            tags={**request.tags, "dagster/run_key": request.run_key, MAX_RUNTIME_TAG: deadline_s},
        )
    )


def _record(instance, run):
    return instance.get_run_record_by_id(run.run_id)


def test_a_run_past_its_deadline_frees_its_table(local_lake, serving, monkeypatch):
    resources = platform_resources(local_lake, serving)
    with dg.instance_for_test() as instance:
        assert materialize("key:lake/gold/* or key:rds/gold/*", resources, instance=instance)
        first = tick(instance, resources, cursor=None)
        add_outside_file(local_lake, WEATHER.name)
        request = tick(instance, resources, cursor=first.cursor).run_requests[0]
        assert request.tags[MAX_RUNTIME_TAG] == "1800"  # what run monitoring ends it by

        # within its deadline, a started run holds its table: no second request, no check run
        running = _sync_run(instance, request, "3600")
        assert rds_key(WEATHER.name) in active_asset_keys(instance)
        assert tick(instance, resources, cursor=first.cursor).run_requests == []
        instance.delete_run(running.run_id)

        # past its deadline (its worker died with `dagster dev`), it holds nothing
        stuck = _sync_run(instance, request, "0.01")
        wait_for(lambda: overdue(instance, _record(instance, stuck)), 30, "the deadline")
        assert rds_key(WEATHER.name) not in active_asset_keys(instance)
        again = tick(instance, resources, cursor=first.cursor).run_requests
        assert [r.run_key for r in again] == [f"{request.run_key}:attempt-2"]
        # ...also once run monitoring has failed it: the deadline was its wait, no backoff
        instance.report_run_failed(stuck)
        again = tick(instance, resources, cursor=first.cursor).run_requests
        assert [r.run_key for r in again] == [f"{request.run_key}:attempt-2"]

        # a canceled sync is requested again too, after the backoff
        instance.delete_run(stuck.run_id)
        canceled = _sync_run(instance, request, "3600")
        instance.report_run_canceled(canceled)
        assert tick(instance, resources, cursor=first.cursor).run_requests == []
        monkeypatch.setattr(retry_rule, "BASE_DELAY_S", 0.0)
        again = tick(instance, resources, cursor=first.cursor).run_requests
        assert [r.run_key for r in again] == [f"{request.run_key}:attempt-2"]


def test_a_sync_whose_run_was_failed_meanwhile_does_not_publish(
    local_lake, serving, tmp_path, monkeypatch
):
    resources = platform_resources(local_lake, serving)
    gold = f"key:lake/gold/{WEATHER.name} or key:rds/gold/{WEATHER.name}"
    assert materialize(gold, resources).success
    add_outside_file(local_lake, WEATHER.name)
    before, row = count_and_sum(serving, WEATHER), ledger_row(serving, WEATHER)
    marker = tmp_path / "paused"
    monkeypatch.setenv("GOLD_SYNC_PAUSE_AT", "verify")  # staged, not verified nor published
    monkeypatch.setenv("GOLD_SYNC_PAUSE_FILE", str(marker))
    results = []
    with dg.instance_for_test() as instance:
        worker = threading.Thread(
            target=lambda: results.append(
                materialize(
                    f"key:rds/gold/{WEATHER.name}",
                    resources,
                    instance=instance,
                    raise_on_error=False,
                )
            )
        )
        worker.start()
        wait_for(marker.exists, 120, "the sync to pause after its COPY")
        [run] = instance.get_runs()
        instance.report_run_failed(run)  # what the code server does when the worker dies
        marker.unlink()
        worker.join(timeout=120)
    assert results and not results[0].success
    failures = [e for e in results[0].all_events if e.event_type_value == "STEP_FAILURE"]
    assert "not publishing" in failures[0].step_failure_data.error.message
    assert count_and_sum(serving, WEATHER) == before  # the old copy, whole
    assert ledger_row(serving, WEATHER) == row
    assert stage_tables(serving) == []
