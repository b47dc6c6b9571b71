"""The local instance (deploy/dagster.local.yaml) keeps Dagster's SQLite event log where Dagster
keeps it, without syncing each write, on one engine per shard, and a watcher (the UI's run log)
still sees each event."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import dagster as dg
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.ref import InstanceRef
from sqlalchemy.pool import NullPool

from local_instance import ENGINES_KEPT, UnsyncedSqliteEventLogStorage
from tests.support.goldctl import wait_for

PROJECT = Path(__file__).resolve().parent.parent


def _entry(run_id: str, message: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level="INFO",
        user_message=message,
        run_id=run_id,
        timestamp=time.time(),
        job_name="job",
        dagster_event=None,  # a step's log line
    )


def test_event_log_is_dagsters_sqlite_in_its_place_without_syncs(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT / "deploy" / "dagster.local.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, UnsyncedSqliteEventLogStorage)
        run_id = "0f6f7d3e-0000-4000-8000-000000000001"
        seen: list[str] = []

        def watcher(entry: EventLogEntry, _cursor: str) -> None:
            seen.append(entry.user_message)

        storage.watch(run_id, None, watcher)
        try:
            storage.store_event(_entry(run_id, "first"))
            wait_for(lambda: seen == ["first"], 30, "the watcher to see the first event")
            storage.store_event(_entry(run_id, "second"))
            wait_for(lambda: seen == ["first", "second"], 30, "the watcher to see the second")
        finally:
            storage.end_watch(run_id, watcher)
        assert [e.user_message for e in instance.all_logs(run_id)] == ["first", "second"]
        with storage.run_connection(run_id) as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 0  # OFF
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            engine = conn.engine
        # one engine per shard for the process (its dialect set up and statements compiled
        # once), a connection per use as in Dagster's: nothing stays open between writes
        with storage.run_connection(run_id) as conn:
            assert conn.engine is engine
        assert isinstance(engine.pool, NullPool)
        for n in range(ENGINES_KEPT + 3):  # a long-lived process meets many runs
            with storage.run_connection(f"0f6f7d3e-0000-4000-8000-{n:012d}") as conn:
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 0
        assert len(storage._engines) == ENGINES_KEPT
    # the files Dagster's default storage uses, so an existing DAGSTER_HOME keeps its history
    assert (home / "history" / "runs" / f"{run_id}.db").exists()
    assert (home / "history" / "runs" / "index.db").exists()

    # opened from its folder by a process without DAGSTER_HOME (tests, scripts), it reads the same
    monkeypatch.delenv("DAGSTER_HOME")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert [e.user_message for e in instance.all_logs(run_id)] == ["first", "second"]
