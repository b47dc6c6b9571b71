"""How much one sync run does besides copying: module changes, SQL round trips, connections.

The tracer behind `benchmarks/sync_trace.py` (which prints it) and tests/test_sync_trace.py
(which pins its counts).

Two runs of the real RDS op (`rds/gold/<table>` with all its checks, `dg.materialize` in this
process) are traced: one of an unchanged table, one after a Parquet file with a few rows of one
month was added by hand (an outside change: one month reloads). Each run reports

- `module_returns`: returns from a function of the project (`platform_assets`, `resources`) to a
  caller in another project module, counted by `sys.setprofile` while the op's body is on the
  stack: how often control changes module, a proxy for how many pieces a reader must follow;
  `module_returns_before_ledger` stops at the first `ledger.write` (the publish writing the
  ledger row; an unchanged run writes none, so it is the whole op); `module_return_sites`
  counts each call site once (a helper called in a loop over columns or months is one piece
  to follow, not one per column);
- `round_trips`: `psycopg.Connection.wait` calls (each one a request and its answer; a batch of
  statements sent as one string is one), in every thread, while the op runs;
- `connections`: psycopg connections opened (`Connection.connect`, any thread) and ADBC COPY
  connections (`adbc_driver_postgresql.dbapi.connect`);
- `calls`: how often the run asked for facts it could have kept: `ledger.bootstrap` calls and
  `bootstrap_runs` (the setup checked against the database: once per process), catalog reads,
  ledger reads, in-sync judgements, engine checksum scans, lake listings, checksum scans of the
  copy (staging's verification included), row counts.

Counts, not timings: they do not depend on load.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

    import dagster as dg
    import psycopg

    from resources.dagster_resources import LakeStorage, ServingDatabase


DEFAULT_TABLE = "carrier_daily_performance"
PROJECT = ("platform_assets", "resources")
OP_BODY = "_rds_gold"  # the RDS op's body (gold_assets/rds_asset.build_rds_asset)

# (module, function) -> the name it is reported under in `calls`
WATCHED = {
    ("platform_assets.serving.ledger", "_bootstrap_run"): "bootstrap_runs",
    ("platform_assets.serving.ledger", "bootstrap"): "bootstrap_calls",
    ("platform_assets.serving.catalog", "copy_facts"): "catalog_copy_facts",
    ("platform_assets.serving.ledger", "read"): "ledger_reads",
    ("platform_assets.serving.ledger", "read_units"): "ledger_reads",
    ("platform_assets.serving.ledger", "read_everything"): "ledger_reads",
    ("platform_assets.insync", "judge"): "insync_judge",
    ("resources.sql_engine", "segment_checksums"): "engine_checksum_scans",
    ("platform_assets.lake.tables", "current_state"): "lake_listings",
    ("platform_assets.serving.units", "postgres_segments"): "postgres_checksum_scans",
    ("platform_assets.status", "live_row_counts"): "copy_row_counts",
}


def log(message: str) -> None:
    print(f"[sync_trace] {message}", file=sys.stderr, flush=True)


def _module(frame: FrameType) -> str:
    return frame.f_globals.get("__name__", "")


def _ours(module: str) -> bool:
    return module.startswith(PROJECT)


class Trace:
    """Counts while active: module returns in the op's thread, calls of WATCHED functions,
    round trips and connections in every thread."""

    def __init__(self) -> None:
        self.module_returns = 0
        self.before_ledger: int | None = None
        self.round_trips = 0
        self.psycopg_connections = 0
        self.adbc_connections = 0
        self.calls: Counter[str] = Counter()
        self.sites: set[tuple] = set()  # (callee module, function, caller module, caller line)
        self.sites_before_ledger: set[tuple] = set()
        self._depth = 0  # frames of the op's body on the stack (a generator resumes often)
        self._lock = threading.Lock()

    # -- sys.setprofile ---------------------------------------------------------------------
    def profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event not in ("call", "return"):
            return
        code = frame.f_code
        if code.co_name == OP_BODY and _module(frame) == "platform_assets.gold_assets.rds_asset":
            self._depth += 1 if event == "call" else -1
            return
        if self._depth <= 0 and threading.current_thread() is threading.main_thread():
            return
        module = _module(frame)
        if event == "call":
            name = WATCHED.get((module, code.co_name))
            if name is not None:
                with self._lock:
                    self.calls[name] += 1
            ledger_write = (module, code.co_name) == ("platform_assets.serving.ledger", "write")
            if ledger_write and self.before_ledger is None:
                self.before_ledger = self.module_returns
            return
        caller = frame.f_back
        if (
            threading.current_thread() is threading.main_thread()
            and caller is not None
            and _ours(module)
            and _ours(_module(caller))
            and _module(caller) != module
        ):
            self.module_returns += 1
            site = (module, code.co_name, _module(caller), caller.f_lineno)
            self.sites.add(site)
            if self.before_ledger is None:
                self.sites_before_ledger.add(site)

    # -- connection and round-trip hooks -----------------------------------------------------
    @contextlib.contextmanager
    def hooks(self) -> Iterator[None]:
        import adbc_driver_postgresql.dbapi as adbc
        import psycopg

        connect, wait, adbc_connect = (
            psycopg.Connection.connect,
            psycopg.Connection.wait,
            adbc.connect,
        )
        trace = self

        def counted_connect(cls: type, *args: object, **kwargs: object) -> object:
            with trace._lock:
                trace.psycopg_connections += 1
            return connect.__func__(cls, *args, **kwargs)

        def counted_wait(conn: psycopg.Connection, *args: object, **kwargs: object) -> object:
            with trace._lock:
                trace.round_trips += 1
            return wait(conn, *args, **kwargs)

        def counted_adbc(*args: object, **kwargs: object) -> object:
            with trace._lock:
                trace.adbc_connections += 1
            return adbc_connect(*args, **kwargs)

        psycopg.Connection.connect = classmethod(counted_connect)
        psycopg.connect = psycopg.Connection.connect  # the module's alias of the classmethod
        psycopg.Connection.wait = counted_wait
        adbc.connect = counted_adbc
        threading.setprofile(self.profile)
        sys.setprofile(self.profile)
        try:
            yield self
        finally:
            sys.setprofile(None)
            threading.setprofile(None)
            psycopg.Connection.connect, psycopg.Connection.wait = connect, wait
            psycopg.connect = connect
            adbc.connect = adbc_connect

    def result(self) -> dict:
        return {
            "module_returns": self.module_returns,
            "module_returns_before_ledger": self.module_returns
            if self.before_ledger is None
            else self.before_ledger,
            "module_return_sites": len(self.sites),
            "module_return_sites_before_ledger": len(self.sites_before_ledger),
            "round_trips": self.round_trips,
            "connections": {
                "psycopg": self.psycopg_connections,
                "adbc_copy": self.adbc_connections,
            },
            "calls": {name: self.calls.get(name, 0) for name in sorted(set(WATCHED.values()))},
        }


def materialize(
    selection: str, lake: LakeStorage, serving: ServingDatabase
) -> dg.ExecuteInProcessResult:
    """The real assets `selection` touches, materialized in this process (no executor child)."""
    from tests.support.real_assets import materialize, platform_resources

    return materialize(selection, platform_resources(lake, serving))


def traced_sync(lake: LakeStorage, serving: ServingDatabase, table: str) -> dict:
    """One run of `rds/gold/<table>` with all its checks, traced; its counts and outcome."""
    trace = Trace()
    with contextlib.redirect_stdout(sys.stderr), trace.hooks():
        result = materialize(f"key:rds/gold/{table}", lake, serving)
    if not result.success:
        raise SystemExit(f"the sync of gold.{table} failed")
    (mat,) = result.get_asset_materialization_events()
    meta = mat.materialization.metadata
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    out = trace.result()
    out["action"] = meta["action"].value
    if "months_reloaded" in meta:
        out["months_reloaded"] = meta["months_reloaded"].value
    out["checks_passed"] = checks
    return out


def trace_runs(lake: LakeStorage, serving: ServingDatabase, table: str) -> dict:
    """The unchanged run, then the run after one month changed outside the platform."""
    from tests.support.lake_edits import add_outside_file

    unchanged = traced_sync(lake, serving, table)
    log(f"unchanged: {unchanged}")
    add_outside_file(lake, table, rows=4)
    changed = traced_sync(lake, serving, table)
    log(f"one changed month: {changed}")
    return {"table": table, "unchanged": unchanged, "one_changed_month": changed}


def build(workdir: Path, url: str, table: str) -> tuple[LakeStorage, ServingDatabase]:
    """The table's lake (Bronze, Silver, Gold) and its RDS copy, by the real assets (scale 1)."""
    from resources.serving_db import ServingDatabase
    from resources.storage import LakeStorage

    lake, serving = LakeStorage(url=str(workdir / "lake")), ServingDatabase(url=url)
    with contextlib.redirect_stdout(sys.stderr):
        built = materialize(f"+key:lake/gold/{table} or key:rds/gold/{table}", lake, serving)
    if not built.success:
        raise SystemExit(f"building gold.{table} failed")
    return lake, serving
