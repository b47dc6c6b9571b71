"""Side by side: the platform's sync vs dlt, Sling, `psql \\copy` and `pandas.to_sql`.

Every tool *replaces a served table*: before each of its runs the target table already holds the
full data (its own previous run left it there, checked), and the run must leave it full again,
as a new relation file (checked with `pg_relation_filenode`). Same Gold Parquet, same PostgreSQL
(a throwaway embedded server), rounds interleaved so the machine's drift hits every tool alike.

- `ours`:      `protocol.sync_table(spec, ..., force=True)`: COPY into staging, verification (row
               count and per-month checksums against the lake), primary key, ANALYZE, atomic swap;
- `dlt`:       dlt 1.31, `write_disposition="replace"`, Parquet read as Arrow row groups; every
               variant in `DLT_VARIANTS` is run (replace strategy x loader file format: ADBC
               Parquet copy or CSV COPY) and the fastest is reported as `dlt`;
- `sling`:     the Sling CLI 1.4.11 binary (wheel `sling-linux-amd64`), `--mode full-refresh` from
               the Parquet folder (Sling reads Parquet through the DuckDB CLI, `duckdb-cli` wheel);
- `psql_copy`: `psql -1` running `TRUNCATE` then `\\copy ... FROM 'file.csv'` (CSV written
               beforehand, untimed), as a careful hand-made replace does;
- `to_sql`:    `pandas.read_parquet` + `DataFrame.to_sql(if_exists="replace")` (SQLAlchemy,
               psycopg 3, chunks of 10,000 rows).

Each load runs in its own process under a tiny wrapper that reports the process tree's largest
RSS high-water mark (`getrusage(RUSAGE_CHILDREN)`); /proc polling adds the tree's summed RSS
(Sling runs the DuckDB CLI beside itself). Python tools time their load from inside (imports
excluded); binaries are timed from start to exit. Each round runs every tool twice: once alone
(rows/s, memory) and once while a reader (its own connection, one `SELECT count(*), sum(flights)`
every 20 ms) watches the target table: a read that errors or returns other than the full table's
count and sum is a bad read; a read that waits on a lock is not.

Two tables: the 1 M-row Gold-like table of sync_throughput.py (unique primary key, published as
a lake Gold version with manifest), and `carrier_daily_performance` as the real assets build it
at `PLATFORM_SCALE_YEARS=10` (`--scale-years`, 0 to skip), which is partitioned by month, so
`ours` force-reloads it month by month as `goldctl sync --force` does.

    uv run python benchmarks/peers.py --json [--rows N] [--rounds R] [--scale-years Y]
    uv run python benchmarks/peers.py --json --rows 20000 --rounds 1 --scale-years 1  # smoke

Progress goes to stderr; stdout holds only the result. Network: none needed (Sling's telemetry
is switched off and its DuckDB comes from the wheel).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from platform_assets.identifiers import quote_ident

# Only the standard library at module level: every tool's child process imports this file, and
# what it imports counts in that tool's peak RSS.
if TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg
    import pyarrow as pa

    from platform_assets.specs import GoldTableSpec
    from resources.dagster_resources import LakeStorage

DEFAULT_ROWS = 1_000_000
DEFAULT_ROUNDS = 3
DEFAULT_SCALE_YEARS = 10
READ_EVERY_S = 0.020
CHECK_COLUMN = "flights"  # the numeric column the reader sums (both tables have it)
TO_SQL_CHUNKSIZE = 10_000
RUN_TIMEOUT_S = 600  # one tool's one replace; past it the tool's process tree is killed
FIRST_READ_TIMEOUT_S = 30.0
RSS_POLL_S = 0.05

PEERS = ("dlt", "sling")
TOOLS = ("ours", "psql_copy", "dlt", "sling", "to_sql")
# (replace strategy, loader file format); "parquet" is dlt's ADBC Parquet copy, "csv" its COPY
# of CSV files it writes in normalize. insert_values (dlt's default without ADBC) is far slower.
DLT_VARIANTS = {
    "dlt_staging_optimized_parquet": ("staging-optimized", "parquet"),
    "dlt_truncate_and_insert_parquet": ("truncate-and-insert", "parquet"),
    "dlt_truncate_and_insert_csv": ("truncate-and-insert", "csv"),
}
URL_ENV = "PEERS_BENCH_PG_URL"  # the server's URL reaches children only through the environment
JOB_ENV = "PEERS_BENCH_JOB"
SLING_CONN = "PEERS_BENCH_PG"  # Sling reads a connection named like an environment variable

# Runs `argv[2:]`, then writes the exit code, wall time and the largest RSS high-water mark of
# its process tree to `argv[1]`. It is tiny on purpose: at exec, Linux folds the parent's RSS
# into the child's `ru_maxrss`, so the wrapper's ~10 MB, not the benchmark's, is the floor.
RSS_WRAPPER = """
import json, resource, subprocess, sys, time
started = time.monotonic()
code = subprocess.call(sys.argv[2:])
wall = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "wall_s": wall, "maxrss_kb": usage.ru_maxrss,
               "cpu_s": usage.ru_utime + usage.ru_stime}, out)
sys.exit(code)
"""


def log(message: str) -> None:
    print(f"[peers] {message}", file=sys.stderr, flush=True)


# ---- the tables ----------------------------------------------------------------------------------


@dataclass
class Table:
    """One source table in the lake, and what every tool's copy of it must hold."""

    name: str  # peers' target table name; ours serves gold.<spec name>
    spec: str  # "bench:<name>" (this file's spec) or "gold:<name>" (platform_assets.specs)
    files: list[str]  # the current lake version's Parquet files (local paths)
    folder: str  # their folder (Sling reads the folder)
    csv: str  # the same rows as CSV (psql)
    rows: int
    check_sum: int  # sum(CHECK_COLUMN)
    scale_years: int | None = None


def resolve_spec(ref: str) -> GoldTableSpec:
    from tests.support.bench_data import bench_spec

    kind, name = ref.split(":", 1)
    if kind == "bench":
        return bench_spec(name)
    from platform_assets.specs import GOLD_BY_NAME

    return GOLD_BY_NAME[name]


def publish_gold_like(lake: LakeStorage, rows: int, workdir: Path, csv: bool = True) -> Table:
    """The sync_throughput table as a published lake Gold version (`bench_data`), and as CSV for
    psql unless `csv` is false."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from tests.support.bench_data import publish_gold_like_version

    spec, table, location, files = publish_gold_like_version(lake, rows)
    csv_path = workdir / "gold_like.csv"
    if csv:
        pacsv.write_csv(table, csv_path)
    return Table(
        name="gold_like",
        spec=f"bench:{spec.name}",
        files=[lake.path(f.key) for f in files],
        folder=lake.path(location),
        csv=str(csv_path),
        rows=table.num_rows,
        check_sum=pc.sum(table[CHECK_COLUMN]).as_py(),
    )


def carrier_table(lake: LakeStorage, workdir: Path, scale_years: int) -> Table:
    """gold.carrier_daily_performance as the assets published it (lake files, CSV for psql)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from platform_assets.lake.tables import GoldLake

    name = "carrier_daily_performance"
    state = GoldLake(lake).current_state(name)
    files = [lake.path(k) for k in state.parquet_keys]
    table = pa.concat_tables(pq.ParquetFile(f).read() for f in files)  # no hive `version` column
    csv_path = workdir / f"{name}.csv"
    pacsv.write_csv(table, csv_path)
    return Table(
        name=name,
        spec=f"gold:{name}",
        files=files,
        folder=lake.path(state.manifest.location),
        csv=str(csv_path),
        rows=table.num_rows,
        check_sum=pc.sum(table[CHECK_COLUMN]).as_py(),
        scale_years=scale_years,
    )


# ---- where each tool writes ----------------------------------------------------------------------


def target(runner: str, table: Table) -> tuple[str, str]:
    """(schema, table) that `runner` replaces for `table`: ours serves gold.<spec name>."""
    if runner == "ours":
        return "gold", table.spec.split(":", 1)[1]
    return f"peers_{runner}", table.name


def relation(runner: str, table: Table) -> str:
    schema, name = target(runner, table)
    return f"{quote_ident(schema)}.{quote_ident(name)}"


# ---- the tools, each in its own process ----------------------------------------------------------


@dataclass
class Tools:
    """Paths and versions of the external tools, found once."""

    psql: str
    sling: str
    duckdb: str
    versions: dict[str, str]


def find_tools() -> Tools:
    import importlib.metadata as md
    import shutil

    from tests.support.bench_data import find_psql

    sling = os.environ.get("SLING_BINARY")
    if not sling:
        try:
            import sling_linux_amd64
        except ImportError:
            raise SystemExit(
                "no Sling binary: install the bench group (uv sync) or set SLING_BINARY"
            ) from None
        sling = sling_linux_amd64.SLING_BIN
    duckdb = shutil.which("duckdb", path=str(Path(sys.executable).parent)) or shutil.which("duckdb")
    if not duckdb:
        raise SystemExit("no DuckDB CLI for Sling: install the bench group (duckdb-cli wheel)")
    version = subprocess.run(
        [sling, "--version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return Tools(
        psql=find_psql(),
        sling=sling,
        duckdb=duckdb,
        versions={
            "dlt": md.version("dlt"),
            "sling": version.strip().removeprefix("Version:").strip(),
            "duckdb_cli": md.version("duckdb-cli"),
            "pandas": md.version("pandas"),
            "sqlalchemy": md.version("sqlalchemy"),
        },
    )


def sling_url(url: str) -> str:
    """Sling (Go) wants TLS off said explicitly on a unix socket, where libpq needs nothing."""
    if "host=/" in url and "sslmode=" not in url:
        return url + ("&" if "?" in url else "?") + "sslmode=disable"
    return url


def dlt_url(url: str) -> str:
    """dlt insists on a host and a password in the URL: a socket path goes to the query."""
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import URL

    params = conninfo_to_dict(url)
    host = str(params.pop("host", "") or "localhost")
    query = {
        k: str(v) for k, v in params.items() if k not in ("user", "password", "dbname", "port")
    }
    if host.startswith("/"):
        query["host"], host = host, "localhost"
    return URL.create(
        "postgresql",
        username=params.get("user"),
        password=params.get("password") or "",  # trust authentication: any password will do
        host=host,
        port=int(params.get("port") or 5432),
        database=params.get("dbname"),
        query=query,
    ).render_as_string(hide_password=False)


def command(runner: str, table: Table, tools: Tools, workdir: Path) -> tuple[list[str], dict]:
    """The command line and environment that make `runner` replace its copy of `table`."""
    url = os.environ[URL_ENV]
    schema, name = target(runner, table)
    if runner == "psql_copy":
        from tests.support.bench_data import libpq_env

        rel = relation(runner, table)
        copy = f"\\copy {rel} FROM '{table.csv}' WITH (FORMAT csv, HEADER true)"
        argv = [tools.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1"]
        return [*argv, "-c", f"TRUNCATE {rel}", "-c", copy], {**os.environ, **libpq_env(url)}
    if runner == "sling":
        argv = [
            tools.sling,
            "run",
            "--src-stream",
            f"file://{table.folder}/",
            "--src-options",
            json.dumps({"format": "parquet"}),
            "--tgt-conn",
            SLING_CONN,
            "--tgt-object",
            f"{schema}.{name}",
            "--mode",
            "full-refresh",
        ]
        env = {
            **os.environ,
            SLING_CONN: sling_url(url),
            "SLING_BINARY": tools.sling,
            "SLING_HOME_DIR": str(workdir / "sling_home"),
            "SLING_DISABLE_TELEMETRY": "true",
            "DUCKDB_PATH": tools.duckdb,  # else Sling downloads DuckDB 1.3.1 (offline: fails)
            "DUCKDB_USE_INSTALLED_EXTENSIONS": "true",  # LOAD json (built in), no INSTALL
        }
        return argv, env
    job = {"runner": runner, "schema": schema, "table": name, "spec": table.spec}
    job.update(files=table.files, lake=str(workdir / "lake"), dlt_dir=str(workdir / "dlt"))
    env = {**os.environ, JOB_ENV: json.dumps(job)}
    if runner in DLT_VARIANTS:
        env[URL_ENV] = dlt_url(url)
    return [sys.executable, __file__, "--child"], env


def child_main() -> None:
    """Child mode: one tool's load, timed from inside; prints {"seconds", ...} as JSON."""
    job = json.loads(os.environ[JOB_ENV])
    runner = job["runner"]
    if runner == "ours":
        result = child_ours(job)
    elif runner in DLT_VARIANTS:
        result = child_dlt(job, *DLT_VARIANTS[runner])
    elif runner == "to_sql":
        result = child_to_sql(job)
    else:
        raise SystemExit(f"unknown runner {runner}")
    print(json.dumps(result))


def child_ours(job: dict) -> dict:
    # imports excluded, as for every Python tool: what the sync imports lazily, too
    import adbc_driver_postgresql.dbapi  # noqa: F401
    import pyarrow.dataset  # noqa: F401

    from platform_assets.lake.tables import GoldLake
    from platform_assets.serving.protocol import sync_table
    from resources.serving_db import ServingDatabase
    from resources.sql_engine import DuckDBEngine
    from resources.storage import LakeStorage

    lake = LakeStorage(url=job["lake"])
    spec = resolve_spec(job["spec"])
    started = time.perf_counter()
    result = sync_table(
        spec,
        GoldLake(lake),
        DuckDBEngine(lake=lake),
        ServingDatabase(url=os.environ[URL_ENV]),
        force=True,
        log=lambda message: print(f"[peers/ours] {message}", file=sys.stderr, flush=True),
    )
    seconds = time.perf_counter() - started
    if result.action != "loaded":
        raise SystemExit(f"sync_table did not load: {result.action}")
    return {
        "seconds": seconds,
        "rows": result.row_count,
        "copy_seconds": result.load_seconds,
        "swap_attempts": result.swap_attempts,
        "months_reloaded": len(result.partitions_reloaded or []) or None,
    }


def child_dlt(job: dict, strategy: str, file_format: str) -> dict:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    import pyarrow.parquet as pq

    started = time.perf_counter()

    @dlt.resource(name=job["table"], write_disposition="replace")
    def row_groups() -> Iterator[pa.Table]:
        """The lake files as Arrow tables, one per row group (what dlt's read_parquet does, in
        bigger pieces and without fsspec)."""
        for path in job["files"]:
            parquet = pq.ParquetFile(path)
            for i in range(parquet.num_row_groups):
                yield parquet.read_row_group(i)

    pipeline = dlt.pipeline(
        pipeline_name=job["schema"],
        destination=dlt.destinations.postgres(
            credentials=os.environ[URL_ENV], replace_strategy=strategy
        ),
        dataset_name=job["schema"],
        pipelines_dir=job["dlt_dir"],
    )
    with contextlib.redirect_stdout(sys.stderr):
        pipeline.run(row_groups(), loader_file_format=file_format)
    seconds = time.perf_counter() - started
    steps = {
        s.step: round((s.finished_at - s.started_at).total_seconds(), 3)
        for s in pipeline.last_trace.steps
    }
    return {"seconds": seconds, "steps_s": steps}


def child_to_sql(job: dict) -> dict:
    import pandas as pd
    from sqlalchemy import create_engine

    started = time.perf_counter()
    frame = pd.read_parquet(job["files"])
    url = os.environ[URL_ENV].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        frame.to_sql(
            job["table"],
            engine,
            schema=job["schema"],
            if_exists="replace",
            index=False,
            chunksize=TO_SQL_CHUNKSIZE,
        )
    finally:
        engine.dispose()
    return {"seconds": time.perf_counter() - started, "rows": len(frame)}


# ---- measuring one run ---------------------------------------------------------------------------


def tree_rss_kb(pid: int) -> int:
    """Summed VmRSS of `pid` and its descendants (0 when it is gone)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


@dataclass
class Reads:
    """What the reader saw."""

    total: int = 0
    ok: int = 0
    empty: int = 0
    partial: int = 0
    errors: Counter = field(default_factory=Counter)
    max_ms: float = 0.0

    @property
    def bad(self) -> int:
        return self.empty + self.partial + sum(self.errors.values())

    def report(self) -> dict:
        return {
            "reads": self.total,
            "bad_reads": self.bad,
            "empty": self.empty,
            "partial": self.partial,
            "errors": dict(self.errors),
            "longest_read_ms": round(self.max_ms, 1),
        }


class Reader(threading.Thread):
    """One `SELECT count(*), sum(col)` every READ_EVERY_S on its own connection."""

    def __init__(self, url: str, rel: str, rows: int, check_sum: int):
        super().__init__(daemon=True)
        self.url, self.rows, self.check_sum = url, rows, check_sum
        self.sql = f"SELECT count(*), sum({quote_ident(CHECK_COLUMN)}) FROM {rel}"
        self.reads = Reads()
        self.stop = threading.Event()
        self.first_ok = threading.Event()
        self.failure: BaseException | None = None

    def _connect(self) -> psycopg.Connection:
        import psycopg

        conn = psycopg.connect(self.url, autocommit=True, application_name="peers-reader")
        # one backend, as one dashboard query is; parallel workers would take the loaders' CPU
        conn.execute("SET max_parallel_workers_per_gather = 0")
        return conn

    def run(self) -> None:
        import psycopg

        try:
            conn = self._connect()
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    count, total = conn.execute(self.sql).fetchone()
                    if count == self.rows and total is not None and int(total) == self.check_sum:
                        self.reads.ok += 1
                        self.first_ok.set()
                    elif count == 0:
                        self.reads.empty += 1
                    else:
                        self.reads.partial += 1
                except psycopg.Error as exc:
                    state = getattr(exc, "sqlstate", None) or "no sqlstate"
                    self.reads.errors[f"{type(exc).__name__} ({state})"] += 1
                    if conn.broken:
                        conn = self._connect()
                elapsed = time.monotonic() - started
                self.reads.total += 1
                self.reads.max_ms = max(self.reads.max_ms, elapsed * 1000)
                self.stop.wait(max(0.0, READ_EVERY_S - elapsed))
            conn.close()
        except BaseException as exc:  # reported by the caller, never swallowed
            self.failure = exc
            self.first_ok.set()


def table_state(url: str, rel: str) -> tuple[int | None, int | None, int | None]:
    """(rows, sum of CHECK_COLUMN, relation file node) of `rel`, or Nones if it is missing."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (rel,)).fetchone()[0] is None:
            return None, None, None
        count, total = conn.execute(
            f"SELECT count(*), sum({quote_ident(CHECK_COLUMN)}) FROM {rel}"
        ).fetchone()
        node = conn.execute("SELECT pg_relation_filenode(%s::regclass)", (rel,)).fetchone()[0]
        return count, (int(total) if total is not None else None), node


@dataclass
class Run:
    runner: str
    table: str
    read: bool
    seconds: float
    rows: int
    peak_rss_mb: float
    tree_peak_rss_mb: float
    cpu_s: float
    detail: dict
    reads: dict | None = None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


class ToolFailed(RuntimeError):
    """One tool failed, hung or left a wrong table: reported as that tool's error, the others go
    on."""


def tail(text: str, limit: int = 600) -> str:
    """The last lines of a tool's output, on one line, without terminal colours."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", text)[-limit:]
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def describe_tree(pid: int) -> str:
    """Each process of the tree: name, state, what it waits in (/proc wchan), CPU seconds."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return "gone"
    parts = []
    for p in tree:
        with contextlib.suppress(psutil.Error, OSError):
            wchan = Path(f"/proc/{p.pid}/wchan").read_text().strip() or "-"
            cpu = sum(p.cpu_times()[:2])
            parts.append(f"{p.name()} {p.status()} in {wchan}, {cpu:.1f} s CPU")
    return "; ".join(parts) or "gone"


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL `proc`, its process group and every descendant (Sling's DuckDB child included,
    should it have left the group)."""
    import signal

    import psutil

    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(30)


def terminate_backends(url: str) -> None:
    """End every other client session on the throwaway server (what a killed tool left)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )


def run_once(
    runner: str,
    table: Table,
    tools: Tools,
    workdir: Path,
    read: bool,
    timeout_s: float = RUN_TIMEOUT_S,
) -> Run:
    """`runner` replaces its copy of `table` once (optionally under the reader), checked; a
    failure, a wrong result or a run past `timeout_s` raises `ToolFailed`."""
    from tests.support.bench_data import checkpoint

    url = os.environ[URL_ENV]
    rel = relation(runner, table)
    checkpoint(url)
    rows_before, _, node_before = table_state(url, rel)
    reader = None
    if read:
        if rows_before != table.rows:
            raise ToolFailed(f"{rel} is not full before {runner}'s run: {rows_before} rows")
        reader = Reader(url, rel, table.rows, table.check_sum)
        reader.start()
        if not reader.first_ok.wait(FIRST_READ_TIMEOUT_S) or reader.failure:
            reader.stop.set()
            raise ToolFailed(f"the reader never saw {rel} whole: {reader.failure}")
    argv, env = command(runner, table, tools, workdir)
    rss_file = workdir / "rss.json"
    wrapper = [sys.executable, "-I", "-S", "-c", RSS_WRAPPER, str(rss_file)]
    tree_peak, timed_out = 0, ""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [*wrapper, *argv],
            env=env,
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=True,  # its own process group: a timeout kills the whole tree
        )
        deadline = time.monotonic() + timeout_s
        try:
            while proc.poll() is None:
                tree_peak = max(tree_peak, tree_rss_kb(proc.pid))
                if time.monotonic() > deadline:
                    timed_out = describe_tree(proc.pid)  # where it hangs, before the kill
                    kill_tree(proc)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(RSS_POLL_S)
        finally:
            if proc.poll() is None:  # interrupted: never leave a tool running
                kill_tree(proc)
            if reader is not None:
                reader.stop.set()
                reader.join(30)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if timed_out:
        terminate_backends(url)  # a killed client's server session may still hold locks
        raise ToolFailed(
            f"{runner} did not finish replacing {table.name} within {timeout_s:g} s: its "
            f"process tree was killed (it was: {timed_out}); last output: {tail(stderr)}"
        )
    if proc.returncode != 0:
        raise ToolFailed(
            f"{runner} failed on {table.name} (exit {proc.returncode}): {tail(stderr)}"
        )
    usage = json.loads(rss_file.read_text())
    detail = json.loads(stdout) if stdout.strip().startswith("{") else {}
    seconds = detail.pop("seconds", None) or usage["wall_s"]
    rows, total, node = table_state(url, rel)
    if (rows, total) != (table.rows, table.check_sum):
        raise ToolFailed(
            f"{runner} left {rel} with {rows} rows, sum {total}; expected "
            f"{table.rows}, {table.check_sum}"
        )
    if node_before is not None and node == node_before:
        raise ToolFailed(f"{runner} did not replace {rel} (same relation file)")
    reads = None
    if reader is not None:
        if reader.failure:
            raise RuntimeError(f"the reader failed: {reader.failure}")
        reads = reader.reads.report()
    return Run(
        runner=runner,
        table=table.name,
        read=read,
        seconds=seconds,
        rows=rows,
        peak_rss_mb=usage["maxrss_kb"] / 1024,
        tree_peak_rss_mb=max(tree_peak, usage["maxrss_kb"]) / 1024,
        cpu_s=usage["cpu_s"],
        detail=detail,
        reads=reads,
    )


# ---- rounds and the report -----------------------------------------------------------------------


def runners(dlt_variants: list[str]) -> list[str]:
    return ["ours", "psql_copy", *dlt_variants, "sling", "to_sql"]


Failures = dict[tuple[str, str], str]  # (table, runner) -> why that tool is out for that table


def attempt(
    failures: Failures,
    runner: str,
    table: Table,
    tools: Tools,
    workdir: Path,
    read: bool,
    timeout_s: float,
) -> Run | None:
    """One run, or None with the tool's failure recorded: it is not run on that table again (a
    hung tool would cost the time limit every round)."""
    if (table.name, runner) in failures:
        return None
    try:
        return run_once(runner, table, tools, workdir, read=read, timeout_s=timeout_s)
    except ToolFailed as failed:
        failures[(table.name, runner)] = str(failed)
        log(f"{runner} on {table.name}: {failed}")
        return None


def prime(
    tables: list[Table], names: list[str], tools: Tools, workdir: Path, timeout_s: float
) -> Failures:
    """Each tool loads each table once, untimed: the served table exists, full, before round 1
    (and first-run costs, such as dlt creating its schema tables, are paid)."""
    import psycopg

    url = os.environ[URL_ENV]
    failures: Failures = {}
    for table in tables:
        for runner in names:
            schema, _ = target(runner, table)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
                if runner == "psql_copy":  # psql copies into a table shaped like ours
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {relation(runner, table)} "
                        f"AS SELECT * FROM {relation('ours', table)} WITH NO DATA"
                    )
            started = time.monotonic()
            if attempt(failures, runner, table, tools, workdir, False, timeout_s):
                log(f"primed {table.name} with {runner} ({time.monotonic() - started:.1f} s)")
    return failures


def interleaved(
    tables: list[Table],
    names: list[str],
    rounds: int,
    tools: Tools,
    workdir: Path,
    timeout_s: float,
    failures: Failures,
) -> list[Run]:
    """Every round: for each table, each tool (order rotated per round) alone, then read."""
    runs: list[Run] = []
    for round_no in range(rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for table in tables:
            for runner in order:
                for read in (False, True):
                    run = attempt(failures, runner, table, tools, workdir, read, timeout_s)
                    if run is None:
                        continue
                    runs.append(run)
                    seen = (
                        f", {run.reads['bad_reads']} bad of {run.reads['reads']} reads"
                        if run.reads
                        else ""
                    )
                    log(
                        f"round {round_no + 1} {table.name} {runner}"
                        f"{' (read)' if read else ''}: {run.rows_per_s:,.0f} rows/s, "
                        f"peak RSS {run.peak_rss_mb:.0f} MB{seen} "
                        f"(load {os.getloadavg()[0]:.1f})"
                    )
    return runs


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize_runner(runs: list[Run]) -> dict:
    alone = [r for r in runs if not r.read]
    read = [r for r in runs if r.read]
    errors: Counter = Counter()
    for r in read:
        errors.update(r.reads["errors"])
    details = [r.detail for r in alone if r.detail]
    return {
        "rows_per_s": round(median([r.rows_per_s for r in alone])),
        "runs_rows_per_s": [round(r.rows_per_s) for r in alone],
        "seconds": round(median([r.seconds for r in alone]), 3),
        "rows_per_s_while_read": round(median([r.rows_per_s for r in read])),
        "peak_rss_mb": round(max(r.peak_rss_mb for r in runs), 1),
        "tree_peak_rss_mb": round(max(r.tree_peak_rss_mb for r in runs), 1),
        "cpu_s": round(median([r.cpu_s for r in alone]), 2),
        "loaded_rows": sorted({r.rows for r in runs}),
        "bad_reads": sum(r.reads["bad_reads"] for r in read),
        "reads": sum(r.reads["reads"] for r in read),
        "empty_reads": sum(r.reads["empty"] for r in read),
        "partial_reads": sum(r.reads["partial"] for r in read),
        "read_errors": dict(errors),
        "longest_read_ms": max(r.reads["longest_read_ms"] for r in read),
        **({"last_run_detail": details[-1]} if details else {}),
    }


def summarize_table(table: Table, runs: list[Run], names: list[str], failures: Failures) -> dict:
    """Per tool its medians, or `{"error": ...}` for a tool that failed or hung on the table
    (its earlier runs are not mixed into the headline)."""
    per_runner = {}
    for runner in names:
        mine = [r for r in runs if r.runner == runner and r.table == table.name]
        failure = failures.get((table.name, runner))
        if failure or not any(r.read for r in mine) or not any(not r.read for r in mine):
            per_runner[runner] = {
                "error": failure or "no complete run",
                "runs_before_failure": len(mine),
            }
        else:
            per_runner[runner] = summarize_runner(mine)
    dlts = [n for n in names if n in DLT_VARIANTS]
    ok_dlts = [n for n in dlts if "error" not in per_runner[n]]
    best_dlt = max(ok_dlts or dlts, key=lambda n: per_runner[n].get("rows_per_s", 0))
    headline = {tool: per_runner[best_dlt if tool == "dlt" else tool] for tool in TOOLS}
    ok_peers = [p for p in PEERS if "error" not in headline[p]]
    best_peer = max(ok_peers, key=lambda p: headline[p]["rows_per_s"]) if ok_peers else None
    ratio = None
    if best_peer and "error" not in headline["ours"]:
        ratio = round(headline["ours"]["rows_per_s"] / headline[best_peer]["rows_per_s"], 3)
    return {
        "rows": table.rows,
        **({"scale_years": table.scale_years} if table.scale_years else {}),
        "rows_per_s": {t: h.get("rows_per_s") for t, h in headline.items()},
        "ours_vs_best_peer": ratio,
        "best_peer": best_peer,
        "bad_reads": {t: h.get("bad_reads") for t, h in headline.items()},
        "peak_rss_mb": {t: h.get("peak_rss_mb") for t, h in headline.items()},
        "errors": {t: h["error"] for t, h in headline.items() if "error" in h},
        "dlt_path": {
            "winner": best_dlt,
            "strategy": DLT_VARIANTS[best_dlt][0],
            "loader_file_format": DLT_VARIANTS[best_dlt][1],
            "rows_per_s": {n: per_runner[n].get("rows_per_s") for n in dlts},
        },
        "tools": per_runner,
    }


def run(args: argparse.Namespace) -> dict:
    started = time.monotonic()
    load_start = os.getloadavg()
    from resources import embedded_pg

    names = runners(args.dlt_variants)
    with tempfile.TemporaryDirectory(prefix="peers-bench-") as tmp:
        workdir = Path(tmp)
        with embedded_pg.throwaway(workdir / "pg") as url:
            os.environ[URL_ENV] = url
            tools = find_tools()
            from resources.storage import LakeStorage
            from tests.support.bench_data import server_version

            tables = []
            if args.scale_years:
                from tests.support.platform import build_platform

                lake, _ = build_platform(workdir, url, args.scale_years)
                tables.append(carrier_table(lake, workdir, args.scale_years))
            lake = LakeStorage(url=str(workdir / "lake"))
            tables.insert(0, publish_gold_like(lake, args.rows, workdir))
            for t in tables:
                log(f"table {t.name}: {t.rows:,} rows in {len(t.files)} Parquet file(s)")
            failures = prime(tables, names, tools, workdir, args.tool_timeout)
            runs = interleaved(
                tables, names, args.rounds, tools, workdir, args.tool_timeout, failures
            )
            version = server_version(url)
    main, *others = (summarize_table(t, runs, names, failures) for t in tables)
    return {
        "benchmark": "peers",
        "server": f"embedded PostgreSQL {version}",
        "cpus": os.cpu_count(),
        "load_average_1_5_15": {
            "start": [round(x, 2) for x in load_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        "rounds": args.rounds,
        "tool_timeout_s": args.tool_timeout,
        "rows": main["rows"],
        "rows_per_s": main["rows_per_s"],
        "ours_vs_best_peer": main["ours_vs_best_peer"],
        "best_peer": main["best_peer"],
        "bad_reads": main["bad_reads"],
        "peak_rss_mb": main["peak_rss_mb"],
        "errors": {t.name: s["errors"] for t, s in zip(tables, [main, *others], strict=True)},
        "versions": tools.versions,
        "dlt_path": main["dlt_path"],
        "tables": {t.name: s for t, s in zip(tables, [main, *others], strict=True)},
        "notes": {
            "rows_per_s": "median over rounds of the runs without reader; Python tools timed "
            "inside their process (imports excluded), psql and Sling from start to exit",
            "ours": "sync_table(force=True): COPY into staging, row count and per-month "
            "checksums against the lake, primary key, ANALYZE, swap; the peers build no index",
            "bad_reads": "reads (every 20 ms, own connection) that errored or did not return "
            "the full table's count and sum while the tool replaced it; waits are not bad",
            "peak_rss_mb": "largest RSS high-water mark in the tool's process tree "
            "(getrusage RUSAGE_CHILDREN); tree_peak_rss_mb sums the tree (polled every 50 ms)",
            "reader": "superuser connection: a dashboard role would also lose SELECT on tables "
            "a tool drops and recreates (ours re-grants in the swap)",
        },
        "seconds_total": round(time.monotonic() - started, 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="indented JSON (else one line)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="interleaved rounds")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="gold-like table rows")
    parser.add_argument(
        "--scale-years",
        type=int,
        default=DEFAULT_SCALE_YEARS,
        help="build the platform at this scale for the carrier table (0: skip it)",
    )
    parser.add_argument(
        "--dlt-variants",
        default=",".join(DLT_VARIANTS),
        help="comma-separated dlt variants to run (the fastest is reported as dlt)",
    )
    parser.add_argument(
        "--tool-timeout",
        type=float,
        default=RUN_TIMEOUT_S,
        help="seconds one replace may take; past it the tool's process tree is killed and the "
        'tool reported as {"error": ...} for that table',
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.dlt_variants = [v for v in args.dlt_variants.split(",") if v]
    if not args.dlt_variants or set(args.dlt_variants) - set(DLT_VARIANTS):
        parser.error(f"--dlt-variants: choose among {', '.join(DLT_VARIANTS)}")
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be within 1..20")
    if not 0 <= args.scale_years <= 20:
        parser.error("--scale-years must be within 0..20")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child_main()
        return
    print(json.dumps(run(args), indent=2 if args.json else None))


if __name__ == "__main__":
    main()
