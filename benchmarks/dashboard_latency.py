"""Dashboard latency: each page's queries on the RDS copy vs on the lake engine, and under load.

DESIGN.md's reason for the serving copy: a dashboard page (a few queries) must be fast, and the
lake engine pays per-query service overhead (Athena ~1.5 s). This measures, in one run, the exact
queries of `dashboard/queries.py` (what a page view runs, `queries.page_queries`):

- `rds`:  PostgreSQL as the read-only dashboard role, one connection reused across page views
          (as the app's `st.cache_resource` connection is);
- `lake`: DuckDB over the lake's Gold Parquet (`gold.<t>` resolved to the manifest's current
          files like `resources/sql_engine.DuckDBEngine` does), a fresh connection per page view
          (what a serverless engine pays; Athena adds its service overhead on top);
- `concurrent`: 8 RDS clients (threads) running page views back to back, first idle, then
          while a separate process force-re-syncs every Gold table in a loop
          (`protocol.sync_table(force=True)`: COPY into staging + atomic swap), reporting
          p50/p95/max page latency, failed page views and syncs completed.

It also EXPLAINs every query (index scan on every Gold relation?) and checks both engines return
the same rows. Setup: a temp dir with an embedded PostgreSQL and a local lake built by the real
assets at `--scale-years` (default 3), or an existing `--lake` + `--rds-url`.

    uv run python benchmarks/dashboard_latency.py --json [--quick] [--repeats N] [--scale-years N]
    uv run python benchmarks/dashboard_latency.py --json --lake .local/lake \
        --rds-url "$(uv run goldctl rds-url)"

Progress goes to stderr; stdout holds only the JSON result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import psycopg  # noqa: E402

from dashboard import queries as Q  # noqa: E402
from dashboard.plans import gold_scans  # noqa: E402
from platform_assets.lake.tables import GoldLake  # noqa: E402
from platform_assets.serving.protocol import sync_table  # noqa: E402
from platform_assets.specs import GOLD_TABLES  # noqa: E402
from resources import embedded_pg  # noqa: E402
from resources.serving_db import ServingDatabase, redact  # noqa: E402
from resources.sql_engine import DuckDBEngine  # noqa: E402
from resources.storage import LakeStorage  # noqa: E402
from tests.support.app_sessions import run as app_sessions_run  # noqa: E402
from tests.support.platform import build_platform  # noqa: E402

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event


CLIENTS = 8


def log(message: str) -> None:
    print(f"[dashboard_latency] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summary(ms: list[float]) -> dict:
    return {
        "p50": round(pct(ms, 0.5), 2),
        "p95": round(pct(ms, 0.95), 2),
        "max": round(max(ms), 2) if ms else None,
        "n": len(ms),
    }


# ---- setup ----------------------------------------------------------------------------------


def reader_url(serving: ServingDatabase, dashboard_url: str | None) -> str:
    """The read-only role's URL: given, or the role on the same server (trust/peer auth)."""
    return dashboard_url or serving.dashboard_url()


def connect_reader(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True, application_name="dashboard-latency")
    conn.execute("SET default_transaction_read_only = on")
    return conn


def default_filters(conn: psycopg.Connection) -> dict:
    """The app's defaults: UA, all airports, the last 365 days of data, routes of 20 flights."""
    first, last = conn.execute(Q.date_bounds().sql).fetchone()
    return {
        "carrier": "UA",
        "origin": None,
        "start": max(first, last - timedelta(days=364)),
        "end": last,
        "min_flights": 20,
    }


# ---- engines --------------------------------------------------------------------------------


def rds_page(conn: psycopg.Connection, queries: list[Q.Query]) -> list[int]:
    counts = []
    for q in queries:
        with conn.cursor() as cur:
            cur.execute(q.sql, q.params)
            counts.append(len(cur.fetchall()))
    return counts


def lake_page(engine: DuckDBEngine, queries: list[Q.Query]) -> list[int]:
    """A fresh DuckDB connection for the page, every Gold table bound to its current files."""
    con = duckdb.connect(config={"threads": engine.threads, "memory_limit": engine.memory_limit})
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS gold")
        for table in sorted({t for q in queries for t in _gold_tables(q.sql)}):
            con.register(f"_lake_gold_{table}", engine._dataset_for(f"gold.{table}", None))
            con.execute(f'CREATE VIEW gold."{table}" AS SELECT * FROM _lake_gold_{table}')
        counts = []
        for q in queries:
            sql, params = q.duckdb()
            counts.append(len(con.execute(sql, params).fetchall()))
        return counts
    finally:
        con.close()


def _gold_tables(sql: str) -> set[str]:
    return {s.name for s in GOLD_TABLES if f"gold.{s.name}" in sql}


def timed(fn: Callable[..., object], *args: object) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn(*args)
    return (time.perf_counter() - started) * 1000, out


# ---- EXPLAIN --------------------------------------------------------------------------------


def index_scans(conn: psycopg.Connection, queries: list[Q.Query]) -> dict[str, bool]:
    """Per query: are its Gold relations read by index (`dashboard/plans.py`'s rule)?"""
    out = {}
    for q in queries:
        gold, bad = gold_scans(conn, q)
        key = q.name if q.name not in out else f"{q.name}#{len(out)}"
        out[key] = bool(gold) and not bad
    return out


# ---- concurrency ----------------------------------------------------------------------------


def concurrent_run(
    url: str,
    pages: dict[str, list[Q.Query]],
    seconds: float,
    sync: Callable[[], object] | None = None,
) -> dict:
    """CLIENTS threads doing page views back to back for `seconds` (optionally while syncing)."""
    stop = threading.Event()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    names = list(pages)

    def client(i: int) -> None:
        conn = connect_reader(url)
        try:
            n = i
            while not stop.is_set():
                page = names[n % len(names)]
                n += 1
                try:
                    ms, _ = timed(rds_page, conn, pages[page])
                except psycopg.Error as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                    conn.close()
                    conn = connect_reader(url)
                    continue
                with lock:
                    latencies.append(ms)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    syncer = None
    if sync is not None:  # its own process, as a Dagster run is (no GIL shared with readers)
        ctx = multiprocessing.get_context("spawn")
        sync_stop, ready = ctx.Event(), ctx.Event()
        done, failed = ctx.Value("i", 0), ctx.Queue()
        syncer = ctx.Process(target=sync_loop, args=(*sync, sync_stop, ready, done, failed))
        syncer.start()
        if not ready.wait(120):  # imports done, first sync starting: measure from here
            raise SystemExit("the sync process did not start")
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    if syncer is not None:  # at least one whole sync (COPY + swap) under the readers
        while done.value < 1 and time.monotonic() - started < 180 and syncer.is_alive():
            time.sleep(0.1)
    stop.set()
    elapsed = time.monotonic() - started
    for t in threads:
        t.join(120)
    syncs_during = done.value if syncer is not None else 0
    sync_errors, syncs = [], []
    if syncer is not None:
        sync_stop.set()
        syncer.join(300)
        while not failed.empty():
            item = failed.get()
            if item[0] == "ok":
                syncs.append({"table": item[1], "seconds": item[2], "swap_attempts": item[3]})
            else:
                sync_errors.append(item[1])
    out = {"clients": CLIENTS, "seconds": round(elapsed, 1), "page_views": len(latencies)}
    out.update({f"{k}_ms": v for k, v in summary(latencies).items() if k != "n"})
    out["failed_page_views"] = len(errors)
    out["errors"] = sorted(set(errors))[:5]
    if syncer is not None:
        out["syncs_completed"] = syncs_during
        out["syncs"] = syncs  # every forced sync the child ran (the last may end after readers)
        out["sync_errors"] = sync_errors[:5]
    return out


def sync_loop(
    lake_url: str, serving_url: str, stop: Event, ready: Event, done: Event, failed: Event
) -> None:
    """Force-re-sync every Gold table, table after table, until told to stop (a child process).

    A sync that is running when `stop` is set finishes first (it is what readers contend with).
    """
    lake = LakeStorage(url=lake_url)
    serving = ServingDatabase(url=serving_url)
    engine, gold = DuckDBEngine(lake=lake), GoldLake(lake)
    ready.set()
    while not stop.is_set():
        for spec in GOLD_TABLES:
            if stop.is_set():
                break
            try:
                t0 = time.monotonic()
                result = sync_table(spec, gold, engine, serving, force=True, log=lambda _: None)
                failed.put(("ok", spec.name, round(time.monotonic() - t0, 2), result.swap_attempts))
                with done.get_lock():
                    done.value += 1
            except Exception as exc:  # reported, not fatal: the readers are what is measured
                failed.put(("error", f"{spec.name}: {type(exc).__name__}: {exc}"[:300]))


# ---- main -----------------------------------------------------------------------------------


def app_sessions(url: str, bounds: tuple, sessions: int, views: int) -> dict:
    """Whole page views of the app (`tests/support/app_sessions.py`): one session alone, then
    `sessions` at once; the machine's load average is reported beside the numbers."""
    load_before = os.getloadavg()[0]
    single = app_sessions_run(url, bounds, 1, views)
    many = app_sessions_run(url, bounds, sessions, views)
    ok = [ms for ms, error in many if error is None]
    errors = [error for _, error in [*single, *many] if error is not None]
    return {
        "sessions": sessions,
        "views_per_session": views,
        "views": len(many),
        "p50_ms": round(pct(ok, 0.5), 1),
        "p95_ms": round(pct(ok, 0.95), 1),
        "max_ms": round(max(ok), 1) if ok else None,
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "single_p50_ms": round(pct([ms for ms, e in single if e is None], 0.5), 1),
        "single_p95_ms": round(pct([ms for ms, e in single if e is None], 0.95), 1),
        "cores": os.cpu_count(),
        "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def run(args: argparse.Namespace) -> dict:
    repeats = args.repeats or (8 if args.quick else 40)
    seconds = args.seconds or (4.0 if args.quick else 20.0)
    scale = args.scale_years or (1 if args.quick else 3)
    with contextlib.ExitStack() as stack:
        if args.lake and args.rds_url:
            lake = LakeStorage(url=args.lake)
            serving = ServingDatabase(url=args.rds_url)
            scale = None
        elif args.lake or args.rds_url:
            raise SystemExit("--lake and --rds-url go together (or neither: temp setup)")
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dashlat-")))
            rds_url = stack.enter_context(embedded_pg.throwaway(workdir / "pg"))
            lake, serving = build_platform(workdir, rds_url, scale)
        engine = DuckDBEngine(lake=lake)
        url = reader_url(serving, args.dashboard_url)
        log(f"reading as {redact(url)}")
        conn = connect_reader(url)
        rows = {
            s.name: conn.execute(f"SELECT count(*) FROM gold.{s.name}").fetchone()[0]
            for s in GOLD_TABLES
        }
        f = default_filters(conn)
        pages = {p: Q.page_queries(p, f) for p in Q.PAGES}
        badge_q = Q.ledger_rows(Q.ALL_TABLES)
        filter_qs = [make() for make in Q.FILTER_QUERIES]

        # Same rows on both engines (and warm-up: first run not timed).
        match = True
        for page, qs in pages.items():
            a, b = rds_page(conn, qs), lake_page(engine, qs)
            if a != b:
                match = False
                log(f"row counts differ on {page}: rds {a} lake {b}")
        plans = index_scans(conn, [*filter_qs, *(q for qs in pages.values() for q in qs)])

        result_pages = {}
        for page, qs in pages.items():
            rds_ms, lake_ms = [], []
            for _ in range(repeats):  # interleaved so drift hits both engines alike
                rds_ms.append(timed(rds_page, conn, qs)[0])
                lake_ms.append(timed(lake_page, engine, qs)[0])
            r, k = summary(rds_ms), summary(lake_ms)
            result_pages[page] = {
                "queries": [q.name for q in qs],
                "rds_ms": {"p50": r["p50"], "p95": r["p95"]},
                "lake_ms": {"p50": k["p50"], "p95": k["p95"]},
                "lake_over_rds_p50": round(k["p50"] / r["p50"], 1) if r["p50"] else None,
            }
            log(f"{page}: rds p50 {r['p50']} ms, lake p50 {k['p50']} ms")
        badge_ms = [timed(rds_page, conn, [badge_q])[0] for _ in range(repeats)]
        filters_ms = [timed(rds_page, conn, filter_qs)[0] for _ in range(repeats)]
        conn.close()

        log(f"{CLIENTS} concurrent clients, idle, {seconds:.0f} s ...")
        idle = concurrent_run(url, pages, seconds)
        log(f"{CLIENTS} concurrent clients while force-syncing every table, {seconds:.0f} s ...")
        syncing = concurrent_run(url, pages, seconds, sync=(lake.url, serving.conninfo()))
        sessions = args.sessions or (2 if args.quick else CLIENTS)
        views = args.views or (4 if args.quick else 24)
        log(f"the app itself: 1 session, then {sessions} concurrent, {views} views each ...")
        app = app_sessions(url, (f["start"] - timedelta(days=730), f["end"]), sessions, views)

    return {
        "benchmark": "dashboard_latency",
        "scale_years": scale,
        "gold_rows": rows,
        "filters": {k: str(v) for k, v in f.items()},
        "repeats": repeats,
        "pages": result_pages,
        "badge_query_ms": {k: v for k, v in summary(badge_ms).items() if k in ("p50", "p95")},
        "filter_lists_ms": {k: v for k, v in summary(filters_ms).items() if k in ("p50", "p95")},
        "concurrent": {"idle": idle, "while_syncing": syncing},
        "app_sessions": app,
        "same_rows_on_both_engines": match,
        "index_scans": plans,
        "all_index_scans": all(plans.values()),
        "rds_page_p95_max_ms": max(p["rds_ms"]["p95"] for p in result_pages.values()),
        "lake_page_p95_max_ms": max(p["lake_ms"]["p95"] for p in result_pages.values()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="scale 1, 8 repeats, 4 s load")
    parser.add_argument("--repeats", type=int, default=None, help="page views per engine (40)")
    parser.add_argument("--seconds", type=float, default=None, help="each load phase (20 s)")
    parser.add_argument("--scale-years", type=int, default=None, help="temp setup scale (3)")
    parser.add_argument("--sessions", type=int, default=None, help="app sessions at once (8)")
    parser.add_argument("--views", type=int, default=None, help="timed views per session (24)")
    parser.add_argument("--lake", help="an existing lake (LAKE_URL form); needs --rds-url")
    parser.add_argument("--rds-url", help="the serving DB (loader) URL; needs --lake")
    parser.add_argument(
        "--dashboard-url", help="read-only role URL (default: the dashboard role on --rds-url)"
    )
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=2 if args.json else None))


if __name__ == "__main__":
    main()
