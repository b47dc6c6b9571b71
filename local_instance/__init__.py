"""The local instance's event log: Dagster's SQLite event log, its writes not synced to disk.

Dagster's SQLite event log opens a connection per write (the run's shard, often the index
shard too) and closes it, which checkpoints the WAL; each commit and checkpoint is an fsync.
A no-op build writes ~166 events: ~1,500 fsyncs, 1.5-4 s of a 2-core machine's wall time
(benchmarks/build.py). With `PRAGMA synchronous=OFF` the files, tables and WAL checkpoints
are the same (the UI still sees each event as it is written); only the syncs go. A process
that crashes loses nothing; an operating system crash or power cut can corrupt the history,
which is derived: the lake and the RDS ledger are the truth, and a new instance records what
exists on lake_change_sensor's first tick (README, "Quick start"). Only the local instance
uses it (deploy/dagster.local.yaml); production keeps PostgreSQL (deploy/dagster.yaml).

It also keeps one SQLAlchemy engine per shard for the life of the process, where Dagster's
creates and disposes one per write (~500 for a no-op build): each new engine initialised its
dialect again and compiled every statement again (its compiled-statement cache dies with it).
The connections still open and close per write (`NullPool`), as in Dagster's: no file stays
open, WAL checkpoints happen as before, a forked process shares nothing live.

A package of its own, importing nothing of this project's: every process loads it with the
instance, before the code location. Inside `platform_assets` it would bind that package to the
installed copy first, and a code location loaded from another folder (a second checkout sharing
the environment, benchmarks/build.py's edited copy) would run the installed code instead.
"""

from __future__ import annotations

import os
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import DagsterInstance
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

ENGINES_KEPT = 32  # shards whose engine stays cached (a run's shard, the index; LRU beyond)


def _unsynced(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    """Every new SQLite connection of the event log: commits without an fsync."""
    dbapi_connection.execute("PRAGMA synchronous=OFF")


class UnsyncedSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log in its default place, `<instance root>/history/runs/`."""

    def __init__(self, inst_data: ConfigurableClassData | None = None):
        # Dagster's own __init__ needs the folder; the instance tells it when it registers
        # (before any read or write), so no setting or DAGSTER_HOME is needed to open it
        self._inst_data = inst_data
        self._engines: OrderedDict[str, Engine] = OrderedDict()

    def register_instance(self, instance: DagsterInstance) -> None:
        folder = os.path.join(instance.root_directory, "history", "runs", "")
        super().__init__(folder, inst_data=self._inst_data)
        super().register_instance(instance)

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict
    ) -> UnsyncedSqliteEventLogStorage:
        return cls(inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, made once (callers hold `_db_lock`)."""
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=NullPool,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            event.listen(engine, "connect", _unsynced)
            self._engines[shard] = engine
            while len(self._engines) > ENGINES_KEPT:
                self._engines.popitem(last=False)[1].dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        """Dagster's `_connect` (one transaction per use, the shard's database created on first
        use), on the shard's cached engine."""
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn
