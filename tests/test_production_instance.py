"""The production profile, run: `deploy/dagster.yaml` as shipped on PostgreSQL, with the code
location served by a gRPC code server that `deploy/workspace.yaml` points at.

Three processes, each started the way README.md's "Production" section says (code server,
`dagster-webserver`, `dagster-daemon`), share a temporary DAGSTER_HOME holding the shipped
dagster.yaml and DAGSTER_PG_URL pointing at a fresh database on the test PostgreSQL. The lake is
a private copy of the session's Silver lake and RDS another fresh database. The test drives Dagster
only through GraphQL and then reads PostgreSQL's own Dagster tables:

- the run launched like the UI's Materialize button went through the queue (`QueuedRunCoordinator`)
  and succeeded; its events, its materializations and every check execution are rows there;
- sensor ticks (`job_ticks`, `instigators`) and freshness state (`FRESHNESS_STATE_CHANGE` events in
  `event_logs`, what `get_freshness_state_records` reads) are stored there;
- two sync runs of one table tagged `gold/table=<t>` never overlap (start/end in `runs`);
- one retry rule (platform_assets/retry_rule.py): a refused sync (its table not built yet) runs
  once, not retried by the daemon (`run_retries` re-executes crashed workers only: the daemon
  says so in the run's log) nor by the sensor; a transient failure (the RDS database refusing
  connections for a while) is retried by the op and heals in the same run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from dagster import deserialize_value
from dagster._core.events.log import EventLogEntry
from dagster._grpc.client import DagsterGrpcClient
from dagster_graphql import DagsterGraphQLClient

from platform_assets.keys import LAKE_CHECKS, RDS_CHECKS, rds_op_name
from tests.support.dagster_dev import BIN, ROOT, DagsterDev, dev_env, free_port

DEPLOY = ROOT / "deploy"
TABLE = "airport_daily_weather"  # built and synced
UNBUILT = "carrier_daily_performance"  # never built: its sync is refused (and not retried)
PG_STATE_TIMEOUT_S = 60


def _database(pg_url: str, prefix: str) -> str:
    """A fresh database on the session server; returns its libpq URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_url.replace("/postgres?", f"/{name}?")


def _name(url: str) -> str:
    """The database a URL names (before the query, whose host may hold slashes)."""
    return url.split("?")[0].split("/")[-1]


def _drop(pg_url: str, url: str) -> None:
    name = _name(url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class ProductionDagster(DagsterDev):
    """Code server, webserver and daemon as separate process groups, as deployed."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        super().__init__(env, log_dir / "webserver.log")
        self.grpc_port = free_port()
        self.env = {
            **env,
            "DAGSTER_GRPC_HOST": "127.0.0.1",
            "DAGSTER_GRPC_PORT": str(self.grpc_port),
        }
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs = []

    def commands(self) -> dict[str, list[str]]:
        """README.md's production commands, on loopback ports."""
        workspace = str(DEPLOY / "workspace.yaml")
        return {
            "code_server": [
                str(BIN / "dagster"), "api", "grpc", "-m", "platform_assets.definitions",
                "-h", "127.0.0.1", "-p", str(self.grpc_port),
            ],
            "webserver": [
                str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port),
                "-w", workspace,
            ],
            "daemon": [str(BIN / "dagster-daemon"), "run", "-w", workspace],
        }  # fmt: skip

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop())
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends its children too
        )

    def start(self) -> ProductionDagster:
        """The code server first: the webserver does not retry a location it could not reach."""
        commands = self.commands()
        self._spawn("code_server", commands.pop("code_server"))
        client = DagsterGrpcClient(port=self.grpc_port, host="127.0.0.1")
        deadline = time.monotonic() + 120
        while True:
            self._alive()
            with contextlib.suppress(Exception):
                client.ping("up")
                break
            assert time.monotonic() < deadline, f"code server not up:\n{self.log_tail()}"
            time.sleep(0.5)
        for name, command in commands.items():
            self._spawn(name, command)
        return self

    def log_tail(self, chars: int = 3000) -> str:
        tails = []
        for name in ("code_server", "webserver", "daemon"):
            path = self.log_dir / f"{name}.log"
            if path.exists():
                tails.append(f"--- {name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(tails)

    def _alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.log_tail()}")

    def launch_tagged(self, keys: list[list[str]], tags: dict, run_config: dict | None = None):
        client = DagsterGraphQLClient("127.0.0.1", port_number=self.port)
        return client.submit_job_execution(
            "__ASSET_JOB",
            repository_location_name="gold_platform",
            repository_name="__repository__",
            run_config=run_config or {},
            tags=tags,
            asset_selection=keys,
        )

    def stop(self) -> None:
        """The webserver and the daemon first, while the code server still answers their last
        calls; then the code server. SIGKILL to each group is the bound (20 s) and takes the
        run workers the code server spawned."""
        deadline = time.monotonic() + 20
        order = [["webserver", "daemon"], ["code_server"]]
        for names in order:
            procs = [self.procs[n] for n in names if n in self.procs]
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # run workers spawned by the code server
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for log in self._logs:
            log.close()
        self.procs = {}


@pytest.fixture
def production(pg_url, local_lake, tmp_path):
    """The three processes on the shipped deploy files; databases dropped on teardown."""
    dagster_url = _database(pg_url, "dagster")
    rds_url = _database(pg_url, "rds")
    home = tmp_path / "dagster_home"
    env = dev_env(home, local_lake.url, rds_url, webhook_url="")
    env.pop("ALERT_WEBHOOK_URL")  # alerts go to the log
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    env["DAGSTER_PG_URL"] = dagster_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    env["FRESHNESS_DAEMON_INTERVAL_SECONDS"] = "5"  # the daemon's own knob (default 30 s)
    dagster = ProductionDagster(env, tmp_path)
    try:
        dagster.start()
        dagster.wait_ready(timeout=120)
        yield dagster, dagster_url, pg_url, rds_url
    finally:
        dagster.stop()
        _drop(pg_url, dagster_url)
        _drop(pg_url, rds_url)


def _rows(url: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def _wait_rows(url: str, sql: str, params=(), timeout: float = PG_STATE_TIMEOUT_S, what=""):
    """Poll PostgreSQL until `sql` returns rows (a condition with a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = _rows(url, sql, params)
        if rows:
            return rows
        assert time.monotonic() < deadline, f"no {what or sql} after {timeout:.0f} s"
        time.sleep(1)


def _asset_key(*path: str) -> str:
    """How Dagster stores an asset key in its tables (AssetKey.to_string())."""
    return "[" + ", ".join(f'"{p}"' for p in path) + "]"


def _tags(url: str, run_id: str) -> dict[str, str]:
    return dict(_rows(url, "SELECT key, value FROM run_tags WHERE run_id = %s", (run_id,)))


def test_production_instance_stores_everything_in_postgres(production):
    dagster, pg, pg_url, rds_url = production
    lake_asset, rds_asset = ["lake", "gold", TABLE], ["rds", "gold", TABLE]

    # A sync launched before its lake table exists is refused: nobody retries it.
    doomed = dagster.launch_tagged([["rds", "gold", UNBUILT]], {"gold/table": UNBUILT})
    # The Materialize button: the lake table and its RDS copy, through the queue.
    build = dagster.launch([lake_asset, rds_asset])
    assert dagster.wait_run(build, timeout=180) == "SUCCESS", dagster.log_tail()
    # Two syncs of that table, tagged like the sensor's (checked below, once they ran)
    force = {"ops": {rds_op_name(TABLE): {"config": {"force": True}}}}
    syncs = [
        dagster.launch_tagged([rds_asset], {"gold/table": TABLE}, run_config=force)
        for _ in range(2)
    ]

    # -- the run, its events and its checks are PostgreSQL rows
    [(status, start, end)] = _rows(
        pg, "SELECT status, start_time, end_time FROM runs WHERE run_id = %s", (build,)
    )
    assert status == "SUCCESS" and start < end
    events = dict(
        _rows(
            pg,
            "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s "
            "GROUP BY dagster_event_type",
            (build,),
        )
    )
    # the QueuedRunCoordinator queued it, the daemon launched it
    assert events["PIPELINE_ENQUEUED"] == events["PIPELINE_STARTING"] == 1, events
    assert events["ASSET_MATERIALIZATION"] == 2
    checks = _rows(
        pg,
        "SELECT asset_key, check_name, execution_status FROM asset_check_executions "
        "WHERE run_id = %s",
        (build,),
    )
    expected = {(_asset_key(*lake_asset), c) for c in LAKE_CHECKS}
    expected |= {(_asset_key(*rds_asset), c) for c in RDS_CHECKS}
    assert {(k, c) for k, c, _ in checks} == expected
    assert {s for _, _, s in checks} == {"SUCCEEDED"}, checks

    # -- sensor ticks and the sensors' state (a tick before the first sync finds no ledger yet
    # and fails; one after the build must succeed or skip)
    _wait_rows(
        pg,
        "SELECT status FROM job_ticks WHERE type = 'SENSOR' AND tick_body LIKE %s "
        "AND status IN ('SUCCESS', 'SKIPPED') AND extract(epoch FROM timestamp) > %s",
        ('%"lake_change_sensor"%', end),
        what="lake_change_sensor tick after the build",
    )
    instigators = _rows(pg, "SELECT instigator_type, instigator_body FROM instigators")
    assert any(t == "SENSOR" and '"lake_change_sensor"' in b for t, b in instigators), instigators

    # -- freshness state: the daemon's latest FRESHNESS_STATE_CHANGE for the RDS copy is PASS
    deadline = time.monotonic() + PG_STATE_TIMEOUT_S
    while True:
        rows = _rows(
            pg,
            "SELECT event FROM event_logs WHERE dagster_event_type = 'FRESHNESS_STATE_CHANGE' "
            "AND asset_key = %s ORDER BY id DESC LIMIT 1",
            (_asset_key(*rds_asset),),
        )
        state = (
            deserialize_value(rows[0][0], EventLogEntry).dagster_event.event_specific_data
            if rows
            else None
        )
        if state is not None and state.new_state.value == "PASS":
            break
        assert time.monotonic() < deadline, f"freshness state not PASS: {state}"
        time.sleep(1)

    # -- the two syncs of one table: never at once
    for run_id in syncs:
        assert dagster.wait_run(run_id, timeout=120) == "SUCCESS", dagster.log_tail()
    rows = _rows(
        pg,
        "SELECT run_id, extract(epoch FROM create_timestamp), start_time, end_time FROM runs "
        "WHERE run_id = ANY(%s) ORDER BY start_time",
        (syncs,),
    )
    (_, created_1, start_1, end_1), (_, created_2, start_2, end_2) = rows
    assert max(created_1, created_2) < end_1  # both were queued while the first ran...
    assert end_1 <= start_2  # ...and the second started only after the first ended
    assert all(_tags(pg, r)["gold/table"] == TABLE for r in syncs)

    # -- a refusal runs once: the daemon says why it does not retry it, no child run exists, and
    # the sensor ticks after it without asking again
    assert dagster.wait_run(doomed, timeout=120) == "FAILURE"
    _wait_rows(
        pg,
        "SELECT 1 FROM event_logs WHERE run_id = %s AND event LIKE %s",
        (doomed, "%Not retrying run since it failed due to an asset or op failure%"),
        what="the daemon's decision not to retry the refused sync",
    )
    [(failed_at,)] = _rows(pg, "SELECT end_time FROM runs WHERE run_id = %s", (doomed,))
    _wait_rows(
        pg,
        "SELECT 1 FROM job_ticks WHERE type = 'SENSOR' AND tick_body LIKE %s "
        "AND status IN ('SUCCESS', 'SKIPPED') AND extract(epoch FROM timestamp) > %s",
        ('%"lake_change_sensor"%', failed_at),
        what="lake_change_sensor tick after the refusal",
    )
    assert (
        _rows(
            pg,
            "SELECT run_id FROM run_tags WHERE key = 'dagster/parent_run_id' AND value = %s",
            (doomed,),
        )
        == []
    )
    assert [
        r
        for (r,) in _rows(
            pg, "SELECT run_id FROM run_tags WHERE key = 'gold/table' AND value = %s", (UNBUILT,)
        )
    ] == [doomed]

    # -- a transient failure: RDS refuses connections; the op retries; back, the same run heals
    rds_name = _name(rds_url)
    admin = pg_url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {rds_name} WITH ALLOW_CONNECTIONS false")
    try:
        healing = dagster.launch_tagged([rds_asset], {"gold/table": TABLE}, run_config=force)
        _wait_rows(
            pg,
            "SELECT 1 FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
            (healing, "STEP_UP_FOR_RETRY"),
            timeout=120,
            what="the sync put up for retry while RDS refuses connections",
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {rds_name} WITH ALLOW_CONNECTIONS true")
    assert dagster.wait_run(healing, timeout=180) == "SUCCESS", dagster.log_tail()
    [(retries,)] = _rows(
        pg,
        "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
        (healing, "STEP_UP_FOR_RETRY"),
    )
    assert retries >= 1
