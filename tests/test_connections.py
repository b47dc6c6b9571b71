"""The server's `max_connections` reached during syncs: a failed connect is transient, retried
with the sync's backoff, and heals; `goldctl sync` reports each table in one line and goes on.

A PostgreSQL of the test's own, restarted with `max_connections = 12`; the test takes every
slot itself, then releases them once the sync run was put up for retry.
"""

from __future__ import annotations

import threading

import dagster as dg
import psycopg
import pytest

from platform_assets.specs import GOLD_BY_NAME, GOLD_TABLES
from resources.serving_db import ServingDatabase
from tests.conftest import materialize, platform_resources
from tests.support.copies import copy_status, count_and_sum
from tests.support.goldctl import goldctl, goldctl_env, wait_for
from tests.support.lake_edits import add_outside_file
from tests.support.pg_server import _pg_ctl, _start

WEATHER = GOLD_BY_NAME["airport_daily_weather"]

MAX_CONNECTIONS = 12


def _retried(instance) -> bool:
    return any(
        r.event_log_entry.dagster_event
        and r.event_log_entry.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
        for run in instance.get_runs()
        for r in instance.get_records_for_run(run.run_id).records
    )


def _take_every_slot(url: str) -> list[psycopg.Connection]:
    held = []
    while True:
        try:
            held.append(psycopg.connect(url, autocommit=True, connect_timeout=5))
        except psycopg.OperationalError as exc:
            assert "too many clients" in str(exc) or "reserved" in str(exc), exc
            return held
        assert len(held) <= MAX_CONNECTIONS, "the limit did not apply"


@pytest.fixture
def crowded(own_server, local_lake):  # noqa: F811 - the imported fixture
    """(serving, lake, url) on a server that allows MAX_CONNECTIONS, Gold built and a lake
    change waiting to be synced."""
    pgdata, socket_dir, url = own_server
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
    _pg_ctl(pgdata, "-w", "-m", "fast", "stop")
    _start(pgdata, socket_dir)
    serving = ServingDatabase(url=url)
    assert materialize("key:lake/gold/* or key:rds/gold/*", platform_resources(local_lake, serving))
    return serving, local_lake, url


def test_a_sync_run_meeting_max_connections_is_retried_and_heals(crowded):
    serving, lake, url = crowded
    added, _ = add_outside_file(lake, WEATHER.name)
    before = count_and_sum(serving, WEATHER)
    results = []
    held = _take_every_slot(url)
    try:
        with dg.instance_for_test() as instance:
            worker = threading.Thread(
                target=lambda: results.append(
                    materialize(
                        f"key:rds/gold/{WEATHER.name}",
                        platform_resources(lake, serving),
                        instance=instance,
                        raise_on_error=False,
                    )
                )
            )
            worker.start()
            wait_for(lambda: _retried(instance), 120, "the sync to be put up for retry")
            for conn in held:
                conn.close()
            held = []
            worker.join(timeout=180)
    finally:
        for conn in held:
            conn.close()
    assert results and results[0].success
    assert count_and_sum(serving, WEATHER)[0] == before[0] + added
    assert copy_status(lake, serving, WEATHER).in_sync


def test_goldctl_sync_at_max_connections_reports_each_table_and_goes_on(crowded):
    serving, lake, url = crowded
    env = goldctl_env(lake, serving)
    held = _take_every_slot(url)
    try:
        done = goldctl("sync", env=env)
    finally:
        for conn in held:
            conn.close()
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and len(lines) == len(GOLD_TABLES), done.stderr
    for spec, line in zip(GOLD_TABLES, lines, strict=True):
        assert f"gold.{spec.name}" in line and "too many clients" in line, line
        assert "a retry can succeed" in line, line
    assert goldctl("sync", env=env).returncode == 0  # the slots free: every table in sync
