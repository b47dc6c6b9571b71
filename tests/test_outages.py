"""Transient faults heal without a human: the database stopped mid-sync, locks held too long,
a sensor-launched sync that failed. Refusals are not retried.
"""

from __future__ import annotations

import threading
import uuid

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun

from platform_assets import retry_rule
from platform_assets.keys import rds_key
from platform_assets.lake.tables import GoldLake
from platform_assets.specs import GOLD_BY_NAME
from platform_assets.status import table_status
from resources.serving_db import ServingDatabase
from tests.conftest import materialize, platform_resources
from tests.support.goldctl import goldctl, goldctl_env, paused_goldctl, wait_for
from tests.support.in_process import tick
from tests.support.lake_edits import add_outside_file, current_table, rewrite_table
from tests.support.pg_server import PASSWORD, _pg_ctl, _start

CARRIER = GOLD_BY_NAME["carrier_daily_performance"]
WEATHER = GOLD_BY_NAME["airport_daily_weather"]


def count(serving, spec) -> int:
    with serving.connect(autocommit=True) as conn:
        return conn.execute(f"SELECT count(*) FROM gold.{spec.name}").fetchone()[0]


def test_postgres_stopped_mid_copy_fails_in_one_line_and_the_next_sync_heals(
    own_server, local_lake, tmp_path
):
    pgdata, socket_dir, url = own_server
    serving = ServingDatabase(url=url)
    assert materialize(
        f"key:lake/gold/{CARRIER.name} or key:rds/gold/{CARRIER.name}",
        platform_resources(local_lake, serving),
    ).success
    before = count(serving, CARRIER)
    added, _ = add_outside_file(local_lake, CARRIER.name, rows=3)
    env = goldctl_env(local_lake, serving)
    marker = tmp_path / "paused"

    proc = paused_goldctl("copy", marker, "sync", CARRIER.name, "--force", env=env)
    _pg_ctl(pgdata, "-w", "-m", "immediate", "stop")  # the server goes away mid-COPY
    marker.unlink()
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 1
    assert PASSWORD not in out + err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "the serving database failed during COPY" in err and "RDS keeps serving" in err

    _start(pgdata, socket_dir)  # back: a plain sync heals the copy
    done = goldctl("sync", CARRIER.name, env=env)
    assert done.returncode == 0, done.stderr
    assert count(serving, CARRIER) == before + added
    with serving.connect(autocommit=True) as conn:
        assert table_status(CARRIER, GoldLake(local_lake), conn).in_sync


def test_a_failed_sensor_sync_is_requested_again_with_backoff(local_lake, serving, monkeypatch):
    resources = platform_resources(local_lake, serving)
    with dg.instance_for_test() as instance:
        assert materialize(
            "key:lake/gold/* or key:rds/gold/*", resources, instance=instance
        ).success
        first = tick(instance, resources, cursor=None)
        add_outside_file(local_lake, WEATHER.name)
        request = tick(instance, resources, cursor=first.cursor).run_requests[0]
        assert request.tags["gold/attempt"] == "1"

        # the daemon launched it and it failed (say, the database was restarting)
        run = instance.add_run(
            DagsterRun(
                job_name="__ASSET_JOB",
                run_id=uuid.uuid4().hex,
                status=dg.DagsterRunStatus.STARTED,
                asset_selection=frozenset({rds_key(WEATHER.name)}),
                tags={**request.tags, "dagster/run_key": request.run_key},
            )
        )
        instance.report_run_failed(run)

        assert tick(instance, resources, cursor=first.cursor).run_requests == []  # backing off
        monkeypatch.setattr(retry_rule, "BASE_DELAY_S", 0.0)  # the backoff has passed
        again = tick(instance, resources, cursor=first.cursor).run_requests
        assert [r.run_key for r in again] == [f"{request.run_key}:attempt-2"]
        assert again[0].tags["gold/attempt"] == "2"


def _events(result, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


def test_refusals_are_not_retried(local_lake, serving):
    resources = platform_resources(local_lake, serving)
    assert materialize(f"key:lake/gold/{WEATHER.name} or key:rds/gold/{WEATHER.name}", resources)
    rewrite_table(local_lake, WEATHER, current_table(local_lake, WEATHER).slice(0, 0))
    with dg.instance_for_test() as instance:
        assert len(tick(instance, resources, cursor=None).run_requests) == 1  # out of sync
    result = materialize(f"key:rds/gold/{WEATHER.name}", resources, raise_on_error=False)
    assert not result.success
    assert _events(result, "STEP_UP_FOR_RETRY") == []
    with dg.instance_for_test() as instance:  # nor by the sensor: the refused state is recorded
        assert tick(instance, resources, cursor=None).run_requests == []
    add_outside_file(local_lake, WEATHER.name)  # a new lake state is requested again
    with dg.instance_for_test() as instance:
        assert len(tick(instance, resources, cursor=None).run_requests) == 1


def test_a_lock_held_past_the_budget_is_retried_and_heals(local_lake, serving):
    resources = platform_resources(local_lake, serving)
    assert materialize(f"key:lake/gold/{WEATHER.name} or key:rds/gold/{WEATHER.name}", resources)
    added, _ = add_outside_file(local_lake, WEATHER.name)
    before = count(serving, WEATHER)
    impatient = ServingDatabase(url=serving.url, lock_budget_s=0.5)
    results = []
    with dg.instance_for_test() as instance, serving.connect() as holder:
        holder.execute(f"LOCK TABLE gold.{WEATHER.name} IN ACCESS SHARE MODE")  # a long reader
        worker = threading.Thread(
            target=lambda: results.append(
                materialize(
                    f"key:rds/gold/{WEATHER.name}",
                    {**resources, "serving": impatient},
                    instance=instance,
                    raise_on_error=False,
                )
            )
        )
        worker.start()
        wait_for(
            lambda: (
                instance.get_records_for_run  # noqa: B023 - instance is stable here
                and any(
                    r.event_log_entry.dagster_event
                    and r.event_log_entry.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
                    for run in instance.get_runs()
                    for r in instance.get_records_for_run(run.run_id).records
                )
            ),
            120,
            "the sync to fail on the lock budget and be put up for retry",
        )
        holder.rollback()  # the reader is done
        worker.join(timeout=180)
    assert results and results[0].success
    assert count(serving, WEATHER) == before + added
