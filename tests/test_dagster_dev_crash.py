"""`dagster dev` killed (SIGKILL, every process of it) in the middle of a sync, then restarted:
the copy is in sync again without a person, one sensor tick and one sync after the sync's
deadline (or after the restart, when that comes later).

The platform is built in process first; `dagster dev` runs on temporary folders with the local
instance configuration README's quick start installs (deploy/dagster.local.yaml: run monitoring
on), a short sync deadline (GOLD_SYNC_MAX_RUNTIME_S) and a pause point that holds the sensor's
sync mid-COPY (serving/pausepoints.py), so the kill lands at a known moment. After the restart
the killed run is still STARTED on the instance: nothing but the deadline can end it. Then:
- lake_change_sensor stops treating it as active once past the deadline and requests a new sync
  (attempt 2), which brings the copy in sync;
- run monitoring marks the killed run failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil

from tests.conftest import materialize, platform_resources
from tests.support.dagster_dev import DagsterDev, dev_env
from tests.support.goldctl import wait_for
from tests.support.lake_edits import add_outside_file, table_in_sync

TABLE = "airport_daily_weather"
# The sync deadline for this test (default 1800 s). Ten times what the test needs of it: the kill
# lands ~2 s after the run starts and the healing sync takes ~3 s (at load 4); any more is time
# the test spends waiting for the deadline after the restart.
DEADLINE_S = 30
MONITOR_POLL_S = 15  # deploy/dagster.local.yaml's poll_interval_seconds
SENSOR_S = 15
ONE_SYNC_S = 90  # a run's start and one sync, generously (2 shared cores)


def _kill_group(dev: DagsterDev) -> None:
    """SIGKILL to every process of `dagster dev` (webserver, daemon, code server, run workers,
    step processes): nothing gets to clean up."""
    os.killpg(dev.proc.pid, signal.SIGKILL)
    dev.proc.wait(timeout=30)
    dev._log.close()
    dev.proc = None


def _stored_status(env: dict, run_id: str) -> str:
    """The run's status in the instance's storage, read while no Dagster process runs."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    with DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"])) as instance:
        return instance.get_run_by_id(run_id).status.value


def test_a_sync_killed_with_dagster_dev_heals_after_a_restart(local_lake, serving, tmp_path):
    resources = platform_resources(local_lake, serving)
    assert materialize("key:lake/gold/* or key:rds/gold/*", resources).success
    env = dev_env(tmp_path / "home", local_lake.url, serving.url, "http://127.0.0.1:9/none")
    env["GOLD_SYNC_MAX_RUNTIME_S"] = str(DEADLINE_S)
    marker = tmp_path / "paused"
    paused_env = {**env, "GOLD_SYNC_PAUSE_AT": "copy", "GOLD_SYNC_PAUSE_FILE": str(marker)}

    dev = DagsterDev(paused_env, tmp_path / "dev1.log").start()
    try:
        dev.wait_ready(timeout=180)
        add_outside_file(local_lake, TABLE)
        wait_for(marker.exists, 180, "the sensor's sync to reach the middle of its COPY")
        step_pid = int(marker.read_text())
        [stuck] = dev.runs("gold/table", TABLE)
        _kill_group(dev)
    finally:
        dev.stop()
    wait_for(lambda: not psutil.pid_exists(step_pid), 30, "the step process to be gone")
    marker.unlink()
    assert not table_in_sync(local_lake, serving.url, TABLE).in_sync
    assert _stored_status(env, stuck["runId"]) == "STARTED"  # left behind by the kill

    dev = DagsterDev(env, tmp_path / "dev2.log").start()
    try:
        dev.wait_ready(timeout=180)
        ready_at = time.time()
        started = stuck["startTime"] or stuck["creationTime"]
        # healed one sensor tick and one sync after both the deadline passed and dagster is back
        # (a restart on a loaded machine can take longer than the deadline itself)
        due = max(started + DEADLINE_S, ready_at)
        bound = due + SENSOR_S + ONE_SYNC_S
        while not table_in_sync(local_lake, serving.url, TABLE).in_sync:
            assert time.time() < bound, (
                f"not in sync {bound - started:.0f} s after the killed run started: "
                f"{dev.runs('gold/table', TABLE)}\n{dev.log_tail()}"
            )
            time.sleep(1)
        status = table_in_sync(local_lake, serving.url, TABLE)
        assert status.rds_rows == status.lake_rows
        runs = {r["runId"]: r for r in dev.runs("gold/table", TABLE)}
        healer = [r for r in runs.values() if r["runId"] != stuck["runId"]]
        assert [t["value"] for r in healer for t in r["tags"] if t["key"] == "gold/attempt"] == [
            "2"
        ], runs
        # ...and run monitoring ends the killed run (one poll after its deadline, at most two)
        wait_for(
            lambda: dev.run_status(stuck["runId"]) == "FAILURE",
            max(0, due + 2 * MONITOR_POLL_S + 30 - time.time()),
            "run monitoring to fail the killed run",
        )
    finally:
        dev.stop()
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
