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

A package of its own, importing nothing of this project's: every process loads it with the
instance, before the code location. Inside `platform_assets` it would bind that package to the
installed copy first, and a code location loaded from another folder (a second checkout sharing
the environment, benchmarks/build.py's edited copy) would run the installed code instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import DagsterInstance
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection


class UnsyncedSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log in its default place, `<instance root>/history/runs/`."""

    def __init__(self, inst_data: ConfigurableClassData | None = None):
        # Dagster's own __init__ needs the folder; the instance tells it when it registers
        # (before any read or write), so no setting or DAGSTER_HOME is needed to open it
        self._inst_data = inst_data

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

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with super()._connect(shard) as conn:
            # pysqlite begins the transaction at the first write, so this runs before it
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            yield conn
