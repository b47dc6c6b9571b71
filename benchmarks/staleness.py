"""Staleness: how long the RDS copy lags after someone changes a Gold table outside Dagster.

README.md promises that "lag is never silent" and short: `lake_change_sensor` (every 15 s, on by
default) notices a change made outside Dagster and a sync run brings the RDS copy back. This
benchmark measures exactly what a user sees, under a real `dagster dev` (webserver + daemon):

1. start `dagster dev` on temporary folders (DAGSTER_HOME, a local lake, a throwaway embedded
   PostgreSQL as RDS_URL, a webhook receiver on loopback as ALERT_WEBHOOK_URL);
2. build the whole platform through the GraphQL API (what the UI's Materialize button does);
3. `--repeats` times: add one Parquet file by hand to a Gold table's current version folder (what
   an analyst's `INSERT INTO` leaves) and time until the table is in sync again, judged by
   `platform_assets.status.table_status` (the function behind `goldctl status`), polled every
   0.25 s; `goldctl status --json` confirms at the end.

    uv run python benchmarks/staleness.py --json [--repeats 5] [--table airport_daily_weather]
    uv run python benchmarks/staleness.py --json --quick     # one change (about 2 minutes)

Expect roughly uniform(0, sensor interval) + run start-up + the sync itself. Progress goes to
stderr; stdout holds only the result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from platform_assets.status import TableStatus
    from resources.dagster_resources import LakeStorage


ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's console scripts: dagster, goldctl
LOCATION = "gold_platform"  # [tool.dagster] code_location_name
DEFAULT_TABLE = "airport_daily_weather"
DEFAULT_REPEATS = 5
P95_TARGET_S = 20.0
MAX_REPEATS = 20
STARTUP_TIMEOUT_S = 120
BUILD_TIMEOUT_S = 600
SYNC_TIMEOUT_S = 120  # one outside change until in sync
POLL_S = 0.25


def log(message: str) -> None:
    print(f"[staleness] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- a webhook receiver on loopback ---------------------------------------------------------


class Receiver:
    """A Slack-like incoming webhook on 127.0.0.1 that keeps every JSON body it is sent."""

    def __init__(self, path: str = "/hooks/staleness"):
        self.posts: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.posts.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{path}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def messages(self) -> list[dict]:
        with self._lock:
            return list(self.posts)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# ---- dagster dev --------------------------------------------------------------------------


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
        """SIGTERM to the whole process group, SIGKILL whatever is left after 30 s."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # children (code server, run workers) included
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._log.close()
        self.proc = None


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


# ---- an outside change ------------------------------------------------------------------------


def add_outside_file(lake: LakeStorage, table: str, rows: int = 5) -> tuple[int, str]:
    """One Parquet file written by hand into `table`'s current version folder, with new keys.

    The rows copy existing ones with a made-up value in the first text column of the primary
    key, so the key stays unique. Returns (rows added, the file's lake key).
    """
    from platform_assets.specs import GOLD_BY_NAME
    from resources.lake_tables import GoldLake

    state = GoldLake(lake).current_state(table)
    if state is None:
        raise RuntimeError(f"gold.{table} has no current version")
    with lake.filesystem.open_input_file(lake.path(state.parquet_keys[0])) as f:
        data = pq.read_table(f).slice(0, rows)
    column = next(
        c for c in GOLD_BY_NAME[table].primary_key if pa.types.is_string(data.schema.field(c).type)
    )
    tag = uuid.uuid4().hex[:6]
    values = pa.array([f"Z{tag}{i}" for i in range(len(data))], data.schema.field(column).type)
    data = data.set_column(data.schema.get_field_index(column), column, values)
    key = f"{state.manifest.location}/part-outside-{tag}.parquet"
    # written under a name readers skip, then renamed: a listing never sees half a file
    with lake.filesystem.open_output_stream(lake.path(f"{key}.tmp")) as out:
        pq.write_table(data, out)
    lake.filesystem.move(lake.path(f"{key}.tmp"), lake.path(key))
    return len(data), key


def table_in_sync(lake: LakeStorage, rds_url: str, table: str) -> TableStatus:
    """The status `goldctl status` prints for `table` (same function, in process)."""
    import psycopg

    from platform_assets.specs import GOLD_BY_NAME
    from platform_assets.status import table_status
    from resources.lake_tables import GoldLake

    with psycopg.connect(rds_url, autocommit=True) as conn:
        return table_status(GOLD_BY_NAME[table], GoldLake(lake), conn)


def wait_in_sync(
    lake: LakeStorage, rds_url: str, table: str, timeout: float = SYNC_TIMEOUT_S
) -> float:
    """Seconds until `table` is in sync again (polled every POLL_S)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if table_in_sync(lake, rds_url, table).in_sync:
            return time.monotonic() - started
        time.sleep(POLL_S)
    raise TimeoutError(f"gold.{table} not in sync {timeout:.0f} s after an outside change")


# ---- the benchmark --------------------------------------------------------------------------


def run_phases(dev: DagsterDev, table: str, state_id: str, changed_at: float) -> dict:
    """Where the time went: change -> lag shown and sensor's run request -> run start -> end."""
    shown = dev.lag_shown_at(table, changed_at)
    phases = {"lag_visible_s": round(shown - changed_at, 2) if shown else None}
    syncs = dev.sync_runs(table, state_id)
    sync = syncs[-1] if syncs else {}  # the first one requested (newest first)
    if sync.get("creationTime") and sync.get("startTime") and sync.get("endTime"):
        phases.update(
            to_run_request_s=round(sync["creationTime"] - changed_at, 2),
            run_start_s=round(sync["startTime"] - sync["creationTime"], 2),
            run_s=round(sync["endTime"] - sync["startTime"], 2),
        )
    return phases


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (of 5 values: the largest)."""
    ranked = sorted(values)
    return ranked[max(0, -(-95 * len(ranked) // 100) - 1)]


def median_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def sensor_interval_s() -> int:
    from platform_assets.definitions import defs

    return defs.resolve_sensor_def("lake_change_sensor").minimum_interval_seconds


def run(args: argparse.Namespace) -> dict:
    from platform_assets.definitions import ASSET_KEYS
    from resources import embedded_pg
    from resources.storage import LakeStorage

    started = time.monotonic()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="staleness-bench-") as tmp:
        workdir = Path(tmp)
        lake = LakeStorage(url=str(workdir / "lake"))
        receiver = Receiver()
        with embedded_pg.throwaway(workdir / "pg") as rds_url:
            env = dev_env(workdir / "dagster_home", lake.url, rds_url, receiver.url)
            dev = DagsterDev(env, workdir / "dagster_dev.log")
            try:
                dev.start()
                startup = dev.wait_ready()
                log(f"dagster dev ready on port {dev.port} after {startup:.1f} s")
                build_started = time.monotonic()
                run_id = dev.launch([key.path for key in ASSET_KEYS])
                status = dev.wait_run(run_id)
                build = time.monotonic() - build_started
                if status != "SUCCESS":
                    raise RuntimeError(f"the platform build ended {status}:\n{dev.log_tail()}")
                log(f"platform built through GraphQL in {build:.1f} s (run {run_id[:8]})")
                wait_in_sync(lake, rds_url, args.table, timeout=60)

                runs = []
                for number in range(args.repeats):
                    rows, key = add_outside_file(lake, args.table)
                    changed_at = time.time()
                    state_id = table_in_sync(lake, rds_url, args.table).lake_version
                    seconds = wait_in_sync(lake, rds_url, args.table)
                    sync_runs = dev.sync_runs(args.table, state_id)
                    for sync_run in sync_runs:  # its checks run after the swap: let them end
                        dev.wait_run(sync_run["runId"], timeout=SYNC_TIMEOUT_S)
                    runs.append(
                        {
                            "seconds": round(seconds, 2),
                            "rows_added": rows,
                            "lake_version": state_id,
                            "sync_runs": len(sync_runs),
                            **run_phases(dev, args.table, state_id, changed_at),
                        }
                    )
                    log(
                        f"change {number + 1}: in sync after {seconds:.1f} s ({key}); "
                        f"{runs[-1]} (load {os.getloadavg()[0]:.1f})"
                    )
                code, report = goldctl_status(env)
                if code != 0:
                    raise RuntimeError(f"goldctl status exited {code}: {report}")
            finally:
                dev.stop()
                receiver.close()
    times = [r["seconds"] for r in runs]
    alerts = receiver.messages()
    return {
        "benchmark": "staleness",
        "table": args.table,
        "repeats": args.repeats,
        "median_s": round(statistics.median(times), 2),
        "p95_s": round(p95(times), 2),
        "p95_target_s": P95_TARGET_S,
        "p95_met": p95(times) <= P95_TARGET_S,
        "max_s": round(max(times), 2),
        "phases_median_s": {
            k: median_of(runs, k)
            for k in ("lag_visible_s", "to_run_request_s", "run_start_s", "run_s")
        },
        "load_average_1_5_15": {
            "start": [round(x, 2) for x in load_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        "min_s": round(min(times), 2),
        "runs": runs,
        "sensor_interval_s": sensor_interval_s(),
        "startup_s": round(startup, 1),
        "build_s": round(build, 1),
        "goldctl_all_in_sync": code == 0,
        "alerts": {
            "failing": sum(1 for a in alerts if a.get("status") == "failing"),
            "recovered": sum(1 for a in alerts if a.get("status") == "recovered"),
        },
        "notes": {
            "seconds": "outside Parquet file written -> table_status(...).in_sync (goldctl's "
            f"verdict), polled every {POLL_S} s",
            "expected": "about uniform(0, sensor interval) + run start-up + the sync itself",
            "phases": "lag_visible_s: change -> the failing in_sync_with_lake evaluation the "
            "sensor records on the RDS asset (what its page shows); to_run_request_s: change -> "
            "sensor's run created; run_start_s: created -> started (process start); run_s: "
            "start -> end, checks included (after the swap)",
            "p95_s": "nearest rank: of 5 changes, the slowest",
        },
        "seconds_total": round(time.monotonic() - started, 1),
    }


def print_human(result: dict) -> None:
    print(f"staleness of rds/gold/{result['table']} after an outside change")
    spread = f"p95 {result['p95_s']:.1f} s, max {result['max_s']:.1f} s"
    print(f"  median {result['median_s']:.1f} s, {spread}")
    seconds = ", ".join(f"{r['seconds']:.1f}" for r in result["runs"])
    print(f"  runs: {seconds} s")
    print(f"  sensor interval {result['sensor_interval_s']} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from platform_assets.specs import GOLD_BY_NAME

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=None, help=f"changes ({DEFAULT_REPEATS})")
    parser.add_argument("--table", default=DEFAULT_TABLE, choices=sorted(GOLD_BY_NAME))
    parser.add_argument("--quick", action="store_true", help="one change (smoke test)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else DEFAULT_REPEATS)
    if not 1 <= args.repeats <= MAX_REPEATS:
        parser.error(f"--repeats must be within 1..{MAX_REPEATS}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_human(result)


if __name__ == "__main__":
    main()
