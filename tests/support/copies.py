"""Syncing and reading the serving copies as the tests and benchmarks need them."""

from __future__ import annotations

import contextlib
import threading
import time

import psycopg

from platform_assets.lake.tables import GoldLake
from platform_assets.serving import ledger
from platform_assets.serving.names import STAGE_SCHEMA
from platform_assets.serving.protocol import sync_table
from platform_assets.status import table_status
from resources.sql_engine import DuckDBEngine
from resources.storage import LakeStorage


def quiet(_msg: str) -> None:
    """A sync's log, dropped."""


def query(serving, sql: str, params=()):
    with serving.connect(autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def sync_spec(lake: LakeStorage, serving, spec, **kwargs):
    """`sync_table` of `spec` with the local engine, quietly (what `goldctl sync` runs)."""
    return sync_table(spec, GoldLake(lake), DuckDBEngine(lake=lake), serving, log=quiet, **kwargs)


def count_and_sum(serving, spec) -> tuple[int, int]:
    """The copy's row count and sum of `flights` (0 for an empty copy)."""
    n, total = query(serving, f"SELECT count(*), coalesce(sum(flights), 0) FROM gold.{spec.name}")[
        0
    ]
    return int(n), int(total)


def copy_status(lake, serving, spec):
    """What `goldctl status` says of the copy (the same function, in process)."""
    with serving.connect(autocommit=True) as conn:
        return table_status(spec, GoldLake(lake), conn)


def stage_tables(serving) -> list[str]:
    """The staging tables left in the staging schema, sorted."""
    rows = query(serving, "SELECT tablename FROM pg_tables WHERE schemaname = %s", (STAGE_SCHEMA,))
    return sorted(r[0] for r in rows)


class Reader(threading.Thread):
    """Reads one copy in a loop on its own connection, as a dashboard would: every answer
    (row count, sum of `flights`), each query's time and every error (a test's failure, a
    benchmark's bad read)."""

    def __init__(self, url: str, table: str, pause_s: float = 0.0):
        super().__init__(daemon=True)
        self.url, self.table, self.pause_s = url, table, pause_s
        self.stop = threading.Event()
        self.results: list[tuple[int, int]] = []
        self.ms: list[float] = []
        self.errors: list[str] = []

    @property
    def sums(self) -> list[int]:
        return [total for _, total in self.results]

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    n, total = conn.execute(
                        f"SELECT count(*), sum(flights) FROM gold.{self.table}"
                    ).fetchone()
                    self.results.append((int(n), int(total or 0)))
                except Exception as exc:  # noqa: BLE001 - every error is a failed read
                    self.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                self.ms.append((time.perf_counter() - started) * 1000)
                if self.pause_s:
                    time.sleep(self.pause_s)


def ledger_row(serving, spec) -> ledger.LedgerRow | None:
    """The copy's ledger row (what the sync recorded: version, rows, checksums, loaded_at)."""
    with serving.connect(autocommit=True) as conn:
        return ledger.read(conn, spec.name)


@contextlib.contextmanager
def sync_lock_held(rds_url: str, table: str):
    """The table's sync lock, held as a sync holds it: its syncs and its checks wait."""
    from platform_assets.serving import locks
    from resources.serving_db import ServingDatabase

    with locks.table_lock(ServingDatabase(url=rds_url), table, wait_s=60):
        yield
