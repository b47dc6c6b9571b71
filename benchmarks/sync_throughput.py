"""Sync throughput: the project's loader vs `pandas.to_sql` vs `psql \\copy`, and its memory.

DESIGN.md ("Sync protocol", step 3) promises that a Gold table reaches RDS by streaming Parquet
as Arrow record batches into binary COPY: at COPY speed, with memory bounded whatever the table
size. This benchmark checks both promises on a Gold-sized table (default 1 M rows) against the two
usual alternatives, on the same rows and the same server:

- `loader`:    platform_assets.serving.loader (pyarrow dataset -> `batches` -> `copy_into`);
- `to_sql`:    `pandas.DataFrame.to_sql` over SQLAlchemy + psycopg (on a subset: it is slow);
- `psql_copy`: `psql \\copy ... FROM 'file.csv' (FORMAT csv)` of a CSV written beforehand.

Runs are interleaved (loader, to_sql, psql, loader, ...) so drift of the machine hits every
method alike, and the median is reported. Every run loads into a fresh table without indexes.
Peak memory is the RSS high-water mark of a child process that does only the load, at 1x and at
`--scale` x the rows, so any growth with table size shows up.

`publish` then runs the platform's whole forced sync of the same rows (`sync_table`: COPY into
staging, verification, primary key, ANALYZE, publish) with verification on and, in this
benchmark only (the shipped code has no switch for it), off: `verified_vs_unverified` is what
the checksum scan against the lake costs (target <= 1.3). Needs the throwaway server.

    uv run python benchmarks/sync_throughput.py --json [--rows N] [--repeats R] [--scale S]
    uv run python benchmarks/sync_throughput.py --json --quick      # smoke test, ~10 s

The server is a throwaway embedded PostgreSQL, or `RDS_URL` when set (tables go to a dedicated
schema that is dropped at the end). Progress goes to stderr; stdout holds only the result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds

from platform_assets.identifiers import quote_ident
from platform_assets.serving import loader
from tests.support.bench_data import (
    BENCH_SCHEMA,
    FILES,
    bench_spec,
    checkpoint,
    drop_bench_schema,
    find_psql,
    fresh_table,
    gold_like_table,
    libpq_env,
    postgres_url,
    publish_gold_like_version,
    server_version,
    write_parquet_files,
)

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_ROWS = 1_000_000
QUICK_ROWS = 200_000
TO_SQL_ROWS = 100_000  # to_sql runs 15-25x slower than COPY: a subset keeps the run short
QUICK_TO_SQL_ROWS = 20_000
TO_SQL_CHUNKSIZE = 10_000

ROUNDS_BUDGET_S = 120.0  # interleaved rounds stop starting once this is spent (>= 1 round)
RUN_TIMEOUT_S = 300  # any one subprocess (psql, memory probe)
MAX_REPEATS = 20
MAX_SCALE = 50

TARGETS = {
    "verified_vs_unverified_max": 1.3,
    "loader_vs_psql_copy_min": 1.0,
    "loader_vs_to_sql_min": 25.0,
    "peak_memory_growth_max": 1.2,
}

URL_ENV = "SYNC_BENCH_PG_URL"  # hands the URL to children without putting secrets on argv


def log(message: str) -> None:
    print(f"[sync_throughput] {message}", file=sys.stderr, flush=True)


# ---- data ---------------------------------------------------------------------------------


def replicate_files(files: list[Path], folder: Path, copies: int) -> int:
    """`copies` x the files in a new folder, as hard links (a copy where linking is refused).

    Regenerating 10x the rows would cost more than the load it feeds; identical copies are the
    same work for the loader, which never looks at content across files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for copy in range(copies):
        for src in files:
            dst = folder / f"copy-{copy:03d}-{src.name}"
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
    return copies * len(files)


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 2**20


# ---- server -------------------------------------------------------------------------------


def count_and_drop(url: str, table: str) -> int:
    """Rows that arrived (each run is verified), then free the space for the next run."""
    import psycopg

    name = f"{quote_ident(BENCH_SCHEMA)}.{quote_ident(table)}"
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        conn.execute(f"DROP TABLE {name}")
    return rows


# ---- the three methods ----------------------------------------------------------------------


@dataclass
class Inputs:
    """What the methods read; all prepared before any timing starts."""

    url: str
    schema: pa.Schema
    parquet_files: list[Path]
    csv_path: Path
    rows: int
    frame: pd.DataFrame  # the to_sql subset
    psql: str


def load_with_loader(inputs: Inputs, table: str) -> int:
    """The project's path, as the sync runs it: dataset -> `batches` -> `copy_into`."""
    dataset = ds.dataset([str(p) for p in inputs.parquet_files], format="parquet")
    schema = loader.load_schema(dataset.schema)
    return loader.load_dataset(inputs.url, BENCH_SCHEMA, table, dataset, schema).rows


def load_with_to_sql(inputs: Inputs, table: str) -> int:
    """pandas' default path: SQLAlchemy INSERTs (method=None), in chunks."""
    from sqlalchemy import create_engine

    engine = create_engine(inputs.url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        inputs.frame.to_sql(
            table,
            engine,
            schema=BENCH_SCHEMA,
            if_exists="append",
            index=False,
            method=None,
            chunksize=TO_SQL_CHUNKSIZE,
        )
    finally:
        engine.dispose()
    return len(inputs.frame)


def load_with_psql(inputs: Inputs, table: str) -> int:
    """`psql \\copy` of the CSV: client-side COPY, the usual hand-made bulk load."""
    command = (
        f"\\copy {quote_ident(BENCH_SCHEMA)}.{quote_ident(table)} "
        f"FROM '{inputs.csv_path}' WITH (FORMAT csv, HEADER true)"
    )
    subprocess.run(
        [inputs.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", command],
        env={**os.environ, **libpq_env(inputs.url)},
        check=True,
        timeout=RUN_TIMEOUT_S,
        stdout=subprocess.DEVNULL,
    )
    return inputs.rows


METHODS: dict[str, Callable[[Inputs, str], int]] = {
    "loader": load_with_loader,
    "to_sql": load_with_to_sql,
    "psql_copy": load_with_psql,
}


def timed_run(inputs: Inputs, method: str) -> float:
    """One load into a fresh table; returns rows/s after checking every row arrived."""
    table = f"bench_{method}"
    fresh_table(inputs.url, table, inputs.schema)
    started = time.perf_counter()
    METHODS[method](inputs, table)
    seconds = time.perf_counter() - started
    loaded = count_and_drop(inputs.url, table)
    expected = len(inputs.frame) if method == "to_sql" else inputs.rows
    if loaded != expected:
        raise RuntimeError(f"{method} loaded {loaded} rows, expected {expected}")
    return loaded / seconds


def warm_up(inputs: Inputs) -> None:
    """One small untimed load per in-process method.

    The first call pays one-off costs (loading the ADBC driver, SQLAlchemy's dialect set-up and
    statement caches) that a long-running sync pays once, not per table; psql is a new process
    every time anyway.
    """
    small = replace(inputs, parquet_files=inputs.parquet_files[:1], frame=inputs.frame.head(1000))
    for method in ("loader", "to_sql"):
        fresh_table(inputs.url, "bench_warm_up", inputs.schema)
        METHODS[method](small, "bench_warm_up")
        count_and_drop(inputs.url, "bench_warm_up")


def interleaved_rounds(inputs: Inputs, repeats: int) -> dict[str, list[float]]:
    """rows/s per method over up to `repeats` rounds (loader, to_sql, psql; loader, ...)."""
    warm_up(inputs)
    results: dict[str, list[float]] = {m: [] for m in METHODS}
    deadline = time.monotonic() + ROUNDS_BUDGET_S
    for round_no in range(repeats):
        if round_no and time.monotonic() > deadline:
            log(f"time budget spent after {round_no} round(s)")
            break
        for method in METHODS:
            results[method].append(timed_run(inputs, method))
            log(f"round {round_no + 1}: {method} {results[method][-1]:,.0f} rows/s")
    return results


# ---- peak memory ----------------------------------------------------------------------------


def maxrss_mb() -> float:
    """This process's own RSS high-water mark, in MB.

    Linux folds the spawning process's high-water mark into a child's `ru_maxrss` at exec, so a
    child started by this (big) benchmark would report the benchmark's peak, not its own. The
    kernel's per-address-space mark, `VmHWM`, starts afresh at exec: use it where it exists.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_load(parquet_dir: str, table: str) -> dict:
    """Child mode: only the loader's load, so the RSS high-water mark is the loader's own."""
    import adbc_driver_postgresql.dbapi  # noqa: F401  (imported before the baseline)

    baseline = maxrss_mb()
    dataset = ds.dataset(parquet_dir, format="parquet")
    schema = loader.load_schema(dataset.schema)
    stats = loader.load_dataset(os.environ[URL_ENV], BENCH_SCHEMA, table, dataset, schema)
    return {
        "rows": stats.rows,
        "seconds": stats.seconds,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": maxrss_mb(),
    }


def memory_probe(url: str, schema: pa.Schema, parquet_dir: Path) -> dict:
    """Run `measure_load` in a fresh interpreter over `parquet_dir`; return its report."""
    table = "bench_memory"
    fresh_table(url, table, schema)
    done = subprocess.run(
        [sys.executable, __file__, "--measure-load", str(parquet_dir), "--table", table],
        env={**os.environ, URL_ENV: url},
        timeout=RUN_TIMEOUT_S,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    if count_and_drop(url, table) != report["rows"]:
        raise RuntimeError("the memory probe's row count does not match the table")
    return report


def peak_memory(url: str, schema: pa.Schema, files: list[Path], workdir: Path, scale: int) -> dict:
    """Peak RSS of the loader at 1x and `scale` x the rows, and how much it grew."""
    one = memory_probe(url, schema, files[0].parent)
    log(f"memory 1x: {one['rows']:,} rows, peak RSS {one['peak_rss_mb']:.0f} MB")
    scaled_dir = workdir / f"parquet_x{scale}"
    replicate_files(files, scaled_dir, scale)
    many = memory_probe(url, schema, scaled_dir)
    log(f"memory {scale}x: {many['rows']:,} rows, peak RSS {many['peak_rss_mb']:.0f} MB")
    shutil.rmtree(scaled_dir)
    above_1x = one["peak_rss_mb"] - one["baseline_rss_mb"]
    above_nx = many["peak_rss_mb"] - many["baseline_rss_mb"]
    return {
        "scale": scale,
        "rows_1x": one["rows"],
        "rows_scaled": many["rows"],
        "peak_rss_mb_1x": round(one["peak_rss_mb"], 1),
        "peak_rss_mb_scaled": round(many["peak_rss_mb"], 1),
        "baseline_rss_mb": round(one["baseline_rss_mb"], 1),
        "load_rss_mb_1x": round(above_1x, 1),
        "load_rss_mb_scaled": round(above_nx, 1),
        "load_rss_growth": round(above_nx / above_1x, 3) if above_1x > 0 else None,
        "loader_rows_per_s_scaled": round(many["rows"] / many["seconds"]),
        "note": "RSS high-water mark of a child doing only the load; baseline = after imports",
    }


# ---- the whole publish, verified and not -----------------------------------------------------


@contextmanager
def verification_off() -> Iterator[None]:
    """Benchmark only: the staging's checksum scan reports what the lake expects, unread."""
    from platform_assets.serving import units

    real = units.verify
    units.verify = lambda conn, relation, schema, column, expected: expected
    try:
        yield
    finally:
        units.verify = real


def server_cpu_s(url: str) -> float | None:
    """CPU seconds the server's processes have used so far: the postmaster's own and its reaped
    children's (each ended backend and parallel worker) plus its live children's. Read from
    /proc, so only for a server on this machine (None elsewhere)."""
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            data = Path(conn.execute("SHOW data_directory").fetchone()[0])
        pid = int((data / "postmaster.pid").read_text().split()[0])

        def used(p: int, reaped: bool) -> int:  # stat fields utime, stime, cutime, cstime
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            return sum(int(f) for f in fields[11 : 15 if reaped else 13])

        ticks = used(pid, True)
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):  # it may end meanwhile
                    ticks += used(int(child), False)
    except (OSError, ValueError, psycopg.Error):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def client_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread: the COPY streams' too
    return usage.ru_utime + usage.ru_stime


def publish_rounds(url: str, workdir: Path, rows: int, repeats: int) -> dict:
    """The same forced `sync_table` of a published lake Gold table, verified and unverified,
    interleaved (order alternating per round) after one untimed warm-up."""
    from platform_assets.lake.tables import GoldLake
    from platform_assets.serving.protocol import sync_table
    from resources.serving_db import ServingDatabase
    from resources.sql_engine import DuckDBEngine
    from resources.storage import LakeStorage

    lake = LakeStorage(url=str(workdir / "publish_lake"))
    publish_gold_like_version(lake, rows)
    spec = bench_spec("peers_gold_like")
    args = (spec, GoldLake(lake), DuckDBEngine(lake=lake), ServingDatabase(url=url))

    cpu: dict[str, list[float]] = {"verified": [], "unverified": []}

    def once(verified: bool) -> float:
        checkpoint(url)  # no run pays for what its predecessor left dirty
        server, client = server_cpu_s(url), client_cpu_s()
        with contextlib.nullcontext() if verified else verification_off():
            result = sync_table(*args, force=True, log=lambda message: None)
        if result.action != "loaded" or result.row_count != rows:
            raise SystemExit(f"publish benchmark: sync_table did not load: {result}")
        after = server_cpu_s(url)
        if server is not None and after is not None:
            cpu["verified" if verified else "unverified"].append(
                after - server + client_cpu_s() - client
            )
        return result.seconds

    once(True)  # imports, first connections, the copy's first creation
    cpu["verified"].clear()
    seconds: dict[str, list[float]] = {"verified": [], "unverified": []}
    for round_no in range(repeats):
        for verified in (True, False) if round_no % 2 == 0 else (False, True):
            seconds["verified" if verified else "unverified"].append(once(verified))
        log(
            f"publish round {round_no + 1}: verified {seconds['verified'][-1]:.2f} s, "
            f"unverified {seconds['unverified'][-1]:.2f} s (load {os.getloadavg()[0]:.1f})"
        )
    median = {k: statistics.median(v) for k, v in seconds.items()}
    cpu_median = {k: statistics.median(v) for k, v in cpu.items() if v}
    return {
        "rows": rows,
        "seconds": {k: round(v, 3) for k, v in median.items()},
        "runs_seconds": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "verified_vs_unverified": ratio(median["verified"], median["unverified"]),
        "cpu_seconds": {k: round(v, 2) for k, v in cpu_median.items()} or None,
        "cpu_verified_vs_unverified": (
            ratio(cpu_median["verified"], cpu_median["unverified"])
            if len(cpu_median) == 2
            else None
        ),
    }


# ---- the benchmark --------------------------------------------------------------------------


def prepare(workdir: Path, rows: int) -> tuple[pa.Table, list[Path], Path]:
    """The table, its Parquet files and its CSV (none of this is timed)."""
    table = gold_like_table(rows)
    files = write_parquet_files(table, workdir / "lake" / "gold" / "bench")
    csv_path = workdir / "bench.csv"
    pacsv.write_csv(table, csv_path)
    log(
        f"data: {rows:,} rows, {len(files)} Parquet files "
        f"({folder_mb(files[0].parent):.0f} MB), CSV {csv_path.stat().st_size / 2**20:.0f} MB"
    )
    return table, files, csv_path


def ratio(a: float, b: float) -> float:
    return round(a / b, 3)


def summarize(
    args: argparse.Namespace,
    label: str,
    version: str,
    inputs: Inputs,
    runs: dict,
    memory: dict,
    publish: dict | None,
    started: float,
) -> dict:
    """The one JSON object: medians, ratios, memory, and each target as a boolean."""
    median = {m: round(statistics.median(v)) for m, v in runs.items()}
    vs_psql = ratio(median["loader"], median["psql_copy"])
    vs_to_sql = ratio(median["loader"], median["to_sql"])
    growth = ratio(memory["peak_rss_mb_scaled"], memory["peak_rss_mb_1x"])
    targets = {
        **TARGETS,
        "loader_vs_psql_copy_met": vs_psql >= TARGETS["loader_vs_psql_copy_min"],
        "loader_vs_to_sql_met": vs_to_sql >= TARGETS["loader_vs_to_sql_min"],
        "peak_memory_growth_met": growth <= TARGETS["peak_memory_growth_max"],
    }
    if publish:
        targets["verified_vs_unverified_met"] = (
            publish["verified_vs_unverified"] <= TARGETS["verified_vs_unverified_max"]
        )
    return {
        "benchmark": "sync_throughput",
        "server": f"{label} PostgreSQL {version}",
        "cpus": os.cpu_count(),
        "rows": inputs.rows,
        "to_sql_rows": len(inputs.frame),
        "repeats": args.repeats,
        "repeats_done": len(runs["loader"]),
        "loader_batch_rows": loader.BATCH_ROWS,
        "loader_copy_chunk_bytes": getattr(loader, "COPY_CHUNK_BYTES", None),
        "rows_per_s": median,
        "runs_rows_per_s": {m: [round(x) for x in v] for m, v in runs.items()},
        "loader_vs_psql_copy": vs_psql,
        "loader_vs_to_sql": vs_to_sql,
        "peak_memory": memory,
        "peak_memory_growth": growth,
        "publish": publish,
        "verified_vs_unverified": publish["verified_vs_unverified"] if publish else None,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "targets": targets,
        "all_targets_met": all(v for k, v in targets.items() if k.endswith("_met")),
        "notes": {
            "rows_per_s": "median of interleaved rounds; every run loads a fresh table, no indexes",
            "to_sql": f"measured on the first {len(inputs.frame):,} rows only (it is slow); "
            f"rows/s is comparable across methods, the duration is not; SQLAlchemy's default "
            f"PostgreSQL driver (psycopg 3, batched 'insertmanyvalues'), about twice the rows/s "
            f"of the psycopg2 path older stacks default to",
            "psql_copy": "CSV written beforehand (untimed); timed from psql start to exit",
            "loader": "timed from opening the Parquet dataset to COPY commit",
            "publish": "sync_table(force=True) of the same rows, median seconds; unverified = "
            "the checksum scan skipped (benchmark only); null on RDS_URL (it writes gold.*); "
            "cpu_seconds: CPU of this process and of the server's processes per sync (median), "
            "which other load on the machine does not change, unlike the seconds",
        },
        "seconds_total": round(time.monotonic() - started, 1),
    }


def run(args: argparse.Namespace) -> dict:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        workdir = Path(tmp)
        table, files, csv_path = prepare(workdir, args.rows)
        with postgres_url(workdir) as (url, label):
            try:
                inputs = Inputs(
                    url=url,
                    schema=loader.load_schema(table.schema),
                    parquet_files=files,
                    csv_path=csv_path,
                    rows=table.num_rows,
                    frame=table.slice(0, args.to_sql_rows).to_pandas(),
                    psql=find_psql(),
                )
                runs = interleaved_rounds(inputs, args.repeats)
                memory = peak_memory(url, inputs.schema, files, workdir, args.scale)
                version = server_version(url)
            finally:
                drop_bench_schema(url)
            publish = None
            if label == "embedded":  # it publishes gold.* and the ledger: never on RDS_URL
                publish = publish_rounds(url, workdir, args.rows, args.repeats)
    return summarize(args, label, version, inputs, runs, memory, publish, started)


def print_human(result: dict) -> None:
    print(f"sync throughput, {result['rows']:,} rows on {result['server']}")
    for method, value in result["rows_per_s"].items():
        print(f"  {method:<10} {value:>12,} rows/s")
    print(f"  loader / psql \\copy   {result['loader_vs_psql_copy']:.2f}x")
    print(f"  loader / to_sql       {result['loader_vs_to_sql']:.1f}x")
    mem = result["peak_memory"]
    print(
        f"  peak RSS {mem['peak_rss_mb_1x']:.0f} MB at 1x, {mem['peak_rss_mb_scaled']:.0f} MB at "
        f"{mem['scale']}x (growth {result['peak_memory_growth']:.2f})"
    )
    if result["publish"]:
        print(f"  whole publish, verified / unverified  {result['verified_vs_unverified']:.2f}")
        cpu = result["publish"]["cpu_verified_vs_unverified"]
        if cpu is not None:
            print(f"  its CPU, verified / unverified        {cpu:.2f}")
    print(f"  all targets met: {result['all_targets_met']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rows", type=int, default=None, help=f"default {DEFAULT_ROWS:,}")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (5)")
    parser.add_argument("--scale", type=int, default=10, help="memory probe at N x the rows")
    parser.add_argument("--to-sql-rows", type=int, default=None, help="to_sql subset size")
    parser.add_argument("--quick", action="store_true", help="200k rows, 1 round (smoke test)")
    parser.add_argument("--measure-load", metavar="PARQUET_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rows = args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)
    args.repeats = args.repeats or (1 if args.quick else 5)
    default_to_sql = QUICK_TO_SQL_ROWS if args.quick else TO_SQL_ROWS
    args.to_sql_rows = min(args.to_sql_rows or default_to_sql, args.rows)
    if args.rows < FILES:
        parser.error(f"--rows must be at least {FILES}")
    if not 1 <= args.repeats <= MAX_REPEATS:
        parser.error(f"--repeats must be within 1..{MAX_REPEATS}")
    if not 2 <= args.scale <= MAX_SCALE:
        parser.error(f"--scale must be within 2..{MAX_SCALE}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.measure_load:
        print(json.dumps(measure_load(args.measure_load, args.table)))
        return
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_human(result)


if __name__ == "__main__":
    main()
