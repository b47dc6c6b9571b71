"""A real `dagster dev` (webserver, daemon, code server) on temporary folders, and what its UI
reads (GraphQL): runs, check executions, sensor ticks. Shared by the tests that need the daemon
and by the benchmarks that measure it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


BIN = Path(sys.executable).parent  # the venv's console scripts: dagster, goldctl


LOCATION = "gold_platform"  # [tool.dagster] code_location_name


STARTUP_TIMEOUT_S = 120


BUILD_TIMEOUT_S = 600


STOP_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DagsterDev:
    """`dagster dev` (webserver + daemon + code server) in its own process group."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None):
        self.port = port or free_port()
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> DagsterDev:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: stop() ends every child with it
        )
        return self

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited ({self.proc.returncode}):\n{self.log_tail()}")

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> float:
        """Until /server_info answers and the code location is loaded; returns seconds waited."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            self._alive()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"dagster dev not ready after {timeout:.0f} s:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as r:
                    if r.status == 200 and self._location_loaded():
                        return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)

    def _location_loaded(self) -> bool:
        data = self.graphql(
            """{ workspaceOrError { __typename ... on Workspace { locationEntries {
                   name loadStatus
                   locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
        )
        for entry in data["workspaceOrError"].get("locationEntries", []):
            if entry["name"] != LOCATION or entry["loadStatus"] != "LOADED":
                continue
            loaded = entry["locationOrLoadError"] or {}
            if loaded.get("__typename") == "PythonError":
                raise RuntimeError(f"code location failed to load: {loaded['message']}")
            return loaded.get("__typename") == "RepositoryLocation"
        return False

    def launch(self, asset_keys: list[list[str]], run_config: dict | None = None) -> str:
        """What the UI's Materialize button does: `__ASSET_JOB` with an asset selection."""
        from dagster_graphql import DagsterGraphQLClient

        client = DagsterGraphQLClient("127.0.0.1", port_number=self.port)
        return client.submit_job_execution(
            "__ASSET_JOB",
            repository_location_name=LOCATION,
            repository_name="__repository__",
            run_config=run_config or {},
            asset_selection=asset_keys,
        )

    def run_status(self, run_id: str) -> str:
        data = self.graphql(
            """query ($id: ID!) { runOrError(runId: $id) {
                 __typename ... on Run { status } ... on PythonError { message } } }""",
            {"id": run_id},
        )
        run = data["runOrError"]
        if run["__typename"] != "Run":
            raise RuntimeError(f"run {run_id}: {run}")
        return run["status"]

    def wait_run(self, run_id: str, timeout: float = BUILD_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._alive()
            status = self.run_status(run_id)
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(1)
        raise TimeoutError(f"run {run_id} not finished after {timeout:.0f} s")

    def runs(self, tag_key: str, tag_value: str) -> list[dict]:
        data = self.graphql(
            """query ($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) {
                 ... on Runs { results {
                   runId status creationTime startTime endTime tags { key value } } } } }""",
            {"tags": [{"key": tag_key, "value": tag_value}]},
        )
        return data["runsOrError"]["results"]

    def sync_runs(self, table: str, state_id: str) -> list[dict]:
        """The sensor's sync runs for one lake state (by tags, whatever the run key)."""
        data = self.graphql(
            """query ($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) {
                 ... on Runs { results {
                   runId status creationTime startTime endTime } } } }""",
            {
                "tags": [
                    {"key": "gold/table", "value": table},
                    {"key": "gold/lake_version", "value": state_id},
                ]
            },
        )
        return data["runsOrError"]["results"]

    def lag_shown_at(self, table: str, after: float) -> float | None:
        """When the RDS asset's page first showed the lag after `after`: the first failing
        `in_sync_with_lake` evaluation stored since then (its stored timestamp)."""
        data = self.graphql(
            """query ($key: AssetKeyInput!) {
                 assetCheckExecutions(assetKey: $key, checkName: "in_sync_with_lake", limit: 25) {
                   evaluation { timestamp success } } }""",
            {"key": {"path": ["rds", "gold", table]}},
        )
        shown = [
            e["evaluation"]["timestamp"]
            for e in data["assetCheckExecutions"]
            if e["evaluation"]
            and not e["evaluation"]["success"]
            and e["evaluation"]["timestamp"] >= after
        ]
        return min(shown) if shown else None

    def stop(self) -> None:
        """End `dagster dev` in its own order, promptly. SIGTERM to the leader first: it stops
        the webserver and the daemon through their shutdown pipes while the code server still
        answers their last calls (SIGTERM to the whole group at once ended the code server
        under calls in flight, and the services waited on them). Once those two are gone,
        SIGTERM to the leader's other children ends the code server at once instead of its
        graceful drain.
        SIGKILL to the group is the bound (STOP_TIMEOUT_S) and takes whatever is left: run
        workers, step processes."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        deadline = time.monotonic() + STOP_TIMEOUT_S
        with contextlib.suppress(ProcessLookupError):
            os.kill(pgid, signal.SIGTERM)  # dagster dev maps SIGTERM to its Ctrl-C
        while _children(pgid, SERVICES) and time.monotonic() < deadline:
            time.sleep(0.1)
        for child in _children(pgid):  # the code server (the leader is shutting it down)
            with contextlib.suppress(psutil.Error):
                child.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # children (code server, run workers) included
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._log.close()
        self.proc = None


SERVICES = ("dagster_webserver", "dagster._daemon")  # `python -m <module>` of `dagster dev`


def _children(leader: int, modules: tuple[str, ...] = ()) -> list[psutil.Process]:
    """The live child processes of `dagster dev` (pid `leader`); only those running one of
    `modules` (`python -m <module>`) when given."""
    try:
        children = psutil.Process(leader).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if not modules or set(child.cmdline()) & set(modules):
                found.append(child)
    return found


def dev_env(dagster_home: Path, lake_url: str, rds_url: str, webhook_url: str) -> dict[str, str]:
    """The environment of `dagster dev` and goldctl: only temp folders, never `.local/`. The
    instance is configured as README's quick start says (deploy/dagster.local.yaml)."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_yaml = dagster_home / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.write_text((ROOT / "deploy" / "dagster.local.yaml").read_text())
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DAGSTER_MODULE_NAME", "DAGSTER_HOME") and not k.startswith("PYTEST_")
    }
    env.update(
        DAGSTER_HOME=str(dagster_home),
        LAKE_URL=lake_url,
        RDS_URL=rds_url,
        ALERT_WEBHOOK_URL=webhook_url,
        PYTHONUNBUFFERED="1",
        DAGSTER_DISABLE_TELEMETRY="1",
    )
    for name in ("S3_ENDPOINT_URL", "SQL_ENGINE", "EMBEDDED_PGDATA", "DASHBOARD_RDS_URL"):
        env.pop(name, None)
    return env


def goldctl_status(env: dict[str, str]) -> tuple[int, dict | None]:
    """`goldctl status --json` with the platform's environment: (exit code, report)."""
    done = subprocess.run(
        [str(BIN / "goldctl"), "status", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        return done.returncode, None


REPO = {"repositoryLocationName": "gold_platform", "repositoryName": "__repository__"}


POLL_S = 0.5


def wait_for(what: str, condition, timeout: float, dev: DagsterDev | None = None):
    """Poll `condition()` until truthy; raise naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = dev.log_tail() if dev else ""
            raise TimeoutError(f"{what} not within {timeout:.0f} s\n{tail}")
        time.sleep(POLL_S)


def executions(dev: DagsterDev, table: str, check: str, limit: int = 10) -> list[dict]:
    """The latest executions of a check of `rds/gold/<table>`, newest planned first."""
    data = dev.graphql(
        """query ($key: AssetKeyInput!, $check: String!, $limit: Int!) {
             assetCheckExecutions(assetKey: $key, checkName: $check, limit: $limit) {
               runId status timestamp
               evaluation { success severity timestamp
                 metadataEntries { label ... on TextMetadataEntry { text } } } } }""",
        {"key": {"path": ["rds", "gold", table]}, "check": check, "limit": limit},
    )
    return data["assetCheckExecutions"]


def shown(dev: DagsterDev, table: str, check: str) -> dict | None:
    """What the asset page shows for the check: its latest planned execution."""
    found = executions(dev, table, check, limit=1)
    return found[0] if found else None


def shows_failing(dev: DagsterDev, table: str, severity: str | None = None) -> bool:
    e = shown(dev, table, "in_sync_with_lake")
    return bool(
        e
        and e["status"] == "FAILED"
        and (severity is None or e["evaluation"]["severity"] == severity)
    )


def shows_green(dev: DagsterDev, table: str, checks) -> bool:
    return all((shown(dev, table, c) or {}).get("status") == "SUCCEEDED" for c in checks)


def sensor_ticks(
    dev: DagsterDev, after: float, limit: int = 25, sensor: str = "lake_change_sensor"
) -> list[dict]:
    """A sensor's ticks that started after `after` (epoch s), oldest first, with logs."""
    data = dev.graphql(
        """query ($sel: SensorSelector!, $limit: Int!) { sensorOrError(sensorSelector: $sel) {
             ... on Sensor { sensorState { ticks(limit: $limit) {
               tickId status timestamp endTimestamp runIds
               logEvents { events { message } } } } } } }""",
        {"sel": {**REPO, "sensorName": sensor}, "limit": limit},
    )
    ticks = data["sensorOrError"]["sensorState"]["ticks"]
    return sorted((t for t in ticks if t["timestamp"] > after), key=lambda t: t["timestamp"])


def launch_job(dev: DagsterDev, job: str, run_config: dict | None = None, keys=None) -> str:
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=dev.port)
    return client.submit_job_execution(
        job,
        repository_location_name=REPO["repositoryLocationName"],
        repository_name=REPO["repositoryName"],
        run_config=run_config or {},
        asset_selection=keys,
    )


def launch_checks(dev: DagsterDev) -> str:
    """What the 10-minute schedule launches: `rds_gold_checks` with every RDS check selected."""
    from platform_assets.keys import RDS_CHECKS
    from platform_assets.specs import GOLD_TABLES

    checks = [
        {"assetKey": {"path": ["rds", "gold", spec.name]}, "name": name}
        for spec in GOLD_TABLES
        for name in RDS_CHECKS
    ]
    data = dev.graphql(
        """mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } }
             ... on PythonError { message } ... on InvalidSubsetError { message } } }""",
        {
            "params": {
                "selector": {
                    **REPO,
                    "jobName": "rds_gold_checks",
                    "assetSelection": [],
                    "assetCheckSelection": checks,
                },
                "runConfigData": {},
            }
        },
    )["launchRun"]
    if data["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launching rds_gold_checks: {data}")
    return data["run"]["runId"]


def run_info(dev: DagsterDev, run_id: str) -> dict:
    data = dev.graphql(
        """query ($id: ID!) { runOrError(runId: $id) {
             ... on Run { status startTime endTime } } }""",
        {"id": run_id},
    )
    return data["runOrError"]


BAD_RDS = {"resources": {"serving": {"config": {"url": "mysql://nobody@127.0.0.1:1/nothing"}}}}
