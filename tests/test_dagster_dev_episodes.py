"""Acceptance: with `dagster dev` running, a rollback is republished, every time.

An operator rolls a Gold table back and forth between two builds by putting the earlier (or the
later) `_manifest.json` back: A -> B -> A -> B -> A. Each step must be republished by
`lake_change_sensor`, through exactly one sync run per step (a run key names the episode, not
the state: a state synced before is synced again when it comes back). One `dagster dev` for the
module (the DagsterDev harness of benchmarks/staleness.py); nothing in process but the builds.
"""

from __future__ import annotations

import shutil
import time
import uuid

import psycopg
import pytest

from platform_assets.lake.tables import MANIFEST, GoldLake, table_prefix
from resources.serving_db import ServingDatabase
from resources.storage import LakeStorage
from tests.conftest import materialize, platform_resources
from tests.support.dagster_dev import DagsterDev, dev_env
from tests.support.lake_edits import new_build
from tests.support.webhook import webhook_receiver

TABLE = "airport_daily_weather"
STEP_WITHIN_S = 120


@pytest.fixture(scope="module")
def dev_with_two_builds(silver_lake_dir, pg_url, tmp_path_factory):
    """`dagster dev` on a lake holding builds A (current, synced) and B of TABLE."""
    root = tmp_path_factory.mktemp("episodes")
    shutil.copytree(silver_lake_dir, root / "lake")
    lake = LakeStorage(url=str(root / "lake"))
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    serving = ServingDatabase(url=pg_url.replace("/postgres?", f"/{name}?"))
    resources = platform_resources(lake, serving)
    key = f"{table_prefix(TABLE)}/{MANIFEST}"
    assert materialize(f"key:lake/gold/{TABLE} or key:rds/gold/{TABLE}", resources).success
    a = lake.read_bytes(key)
    new_build(lake, TABLE)
    b = lake.read_bytes(key)
    lake.write_bytes(key, a)  # A is current and synced when dagster dev starts
    try:
        with webhook_receiver("/hooks/episodes") as receiver:
            env = dev_env(root / "dagster_home", lake.url, serving.url, receiver.url)
            dev = DagsterDev(env, root / "dagster_dev.log")
            dev.start()
            try:
                dev.wait_ready(timeout=120)
                yield dev, lake, serving, {"A": a, "B": b}
            finally:
                dev.stop()
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def held(serving) -> str | None:
    with serving.connect(autocommit=True) as conn:
        row = conn.execute(
            "SELECT lake_version FROM platform.sync_ledger "
            "WHERE table_name = %s AND partition_key = ''",
            (TABLE,),
        ).fetchone()
    return row[0] if row else None


def sensor_syncs(dev: DagsterDev) -> list[dict]:
    """The sensor's sync runs of TABLE, oldest first."""
    runs = dev.runs("gold/table", TABLE)
    return sorted(runs, key=lambda r: r["creationTime"])


def test_a_to_b_to_a_to_b_to_a_each_step_republished_by_one_run(dev_with_two_builds):
    dev, lake, serving, manifests = dev_with_two_builds
    key = f"{table_prefix(TABLE)}/{MANIFEST}"
    versions = {}
    for step in ("A", "B"):
        lake.write_bytes(key, manifests[step])
        versions[step] = GoldLake(lake).current_state(TABLE).state_id
    lake.write_bytes(key, manifests["A"])
    assert versions["A"] != versions["B"] and held(serving) == versions["A"]

    steps = ["B", "A", "B", "A"]
    for n, step in enumerate(steps, start=1):
        lake.write_bytes(key, manifests[step])
        deadline = time.monotonic() + STEP_WITHIN_S
        while True:  # republished: the copy holds the step's state, through a finished run
            syncs = sensor_syncs(dev)
            landed = held(serving) == versions[step] and len(syncs) >= n
            if landed and dev.wait_run(syncs[n - 1]["runId"], timeout=STEP_WITHIN_S) == "SUCCESS":
                break
            assert time.monotonic() < deadline, (
                f"step {n} ({step}) not republished within {STEP_WITHIN_S} s: copy holds "
                f"{held(serving)}; runs {syncs}\n{dev.log_tail()}"
            )
            time.sleep(1)

    syncs = sensor_syncs(dev)
    tags = [{t["key"]: t["value"] for t in run["tags"]} for run in syncs]
    assert len(syncs) == len(steps), tags  # one run per step, none dropped, none twice
    assert [t["gold/lake_version"] for t in tags] == [versions[s] for s in steps]
    assert all(t["dagster/sensor_name"] == "lake_change_sensor" for t in tags)
    assert len({t["dagster/run_key"] for t in tags}) == len(steps)  # an episode each
    assert all(r["status"] == "SUCCESS" for r in syncs)
    assert held(serving) == versions["A"]
