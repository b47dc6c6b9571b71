"""What one sync run costs in connections and repeated reads, as tests/support/sync_trace.py counts.

Behaviour the design promises, not timings: one connection per run for the op (sync, checks,
months, footprint, the sync lock); a load adds only its COPY streams; the ledger's setup once
per process; the lake listed once and its checksums computed from that listing; the checks
judging a sync from its facts (no count(*); no scan of units staging just verified); facts a
run needs for all its columns, units or names computed once for all of them, not per item (the
module returns stay under their bounds: a per-column or per-month helper puts them far above).
"""

from __future__ import annotations

import pytest

from platform_assets.lake.tables import GoldLake
from platform_assets.serving import ledger
from platform_assets.serving.loader import COPY_STREAMS
from platform_assets.serving.snapshot import take
from platform_assets.specs import GOLD_BY_NAME
from resources.sql_engine import DuckDBEngine
from tests.support.sync_trace import materialize, trace_runs, traced_sync

TABLE = "carrier_daily_performance"
WHOLE = "airport_daily_weather"


@pytest.fixture
def synced(local_lake, serving):
    selection = " or ".join(f"key:lake/gold/{t} or key:rds/gold/{t}" for t in (TABLE, WHOLE))
    assert materialize(selection, local_lake, serving).success
    return local_lake, serving


def test_a_sync_run_opens_one_connection_besides_its_copy_streams(synced):
    lake, serving = synced
    runs = trace_runs(lake, serving, TABLE)
    unchanged, changed = runs["unchanged"], runs["one_changed_month"]
    assert unchanged["action"] == "unchanged" and changed["action"] == "loaded"
    assert len(changed["months_reloaded"].split(", ")) == 1, changed
    for run in (unchanged, changed):
        assert all(run["checks_passed"].values()), run  # no false alarm from judging the facts
    # the run's one connection: the sync lock is held on it, shared for the no-op, for itself
    # for the load, which adds only its COPY streams (the staging tables and index builds run
    # there too, the verification scan on the run's connection)
    assert unchanged["connections"] == {"psycopg": 1, "adbc_copy": 0}, unchanged
    assert changed["connections"]["psycopg"] == 1, changed
    assert 1 <= changed["connections"]["adbc_copy"] <= COPY_STREAMS, changed
    for run in (unchanged, changed):
        calls = run["calls"]
        assert calls["bootstrap_runs"] == 0, calls  # this process set the database up already
        assert calls["copy_row_counts"] == 0, calls  # rows come with the checksums
        assert calls["insync_judge"] <= 2, calls  # before the publish, and the check's after
    # an outside change: the engine checksums the snapshot's files, once
    assert changed["calls"]["engine_checksum_scans"] == 1, changed
    assert unchanged["calls"]["engine_checksum_scans"] == 0, unchanged
    # unchanged: one scan for the copy checks; one month loaded: staging's and the copy's
    assert unchanged["calls"]["postgres_checksum_scans"] == 1, unchanged
    assert changed["calls"]["postgres_checksum_scans"] == 2, changed
    # 2026-12-05: 91 (unchanged, whole op) and 67 (before the ledger row); 95 and 84 the day
    # before, 183 and 245 before the facts were computed once per run (docs/DESIGN.md, "One
    # sync run, one set of facts")
    assert unchanged["module_returns"] <= 93, unchanged
    assert changed["module_returns_before_ledger"] <= 69, changed


def test_a_whole_table_reload_is_judged_from_staging_without_scanning_the_copy(synced):
    lake, serving = synced
    from tests.support.lake_edits import add_outside_file

    add_outside_file(lake, WHOLE, rows=3)
    run = traced_sync(lake, serving, WHOLE)
    assert run["action"] == "loaded" and all(run["checks_passed"].values()), run
    assert run["calls"]["postgres_checksum_scans"] == 1, run  # staging's verification only


def test_the_ledger_setup_runs_once_per_process(synced, monkeypatch):
    lake, serving = synced
    monkeypatch.setattr(ledger, "_BOOTSTRAPPED", set())  # as in a new process
    first = traced_sync(lake, serving, TABLE)
    second = traced_sync(lake, serving, TABLE)
    assert first["calls"]["bootstrap_runs"] == 1, first
    assert second["calls"]["bootstrap_runs"] == 0, second


def test_the_engine_checksums_the_snapshots_files_not_a_new_listing(synced):
    """A file added after the snapshot listed the lake is not in the snapshot's checksums."""
    lake, _ = synced
    from tests.support.lake_edits import add_outside_file

    spec, gold, engine = GOLD_BY_NAME[WHOLE], GoldLake(lake), DuckDBEngine(lake=lake)
    add_outside_file(lake, WHOLE, rows=2)  # changed outside: the engine computes the checksums
    state = gold.current_state(WHOLE)
    rows_listed = take(spec, gold, engine).rows
    added, _ = add_outside_file(lake, WHOLE, rows=3)
    snapshot_files = list(state.parquet_keys)
    schema = take(spec, gold, engine).schema
    again = engine.segment_checksums(
        f"gold.{WHOLE}", schema, spec.segment_column, files=snapshot_files
    )
    assert sum(n for n, _ in again.values()) == rows_listed
    assert take(spec, gold, engine).rows == rows_listed + added


def test_a_sync_that_loads_one_month_still_sees_a_delete_by_hand_in_another(synced):
    """The checks of a sync judge units it did not verify by scanning them: a row deleted by
    hand in a month the sync did not reload turns both copy checks red, naming that month."""
    import pyarrow.parquet as pq

    from tests.support.lake_edits import add_outside_file

    lake, serving = synced
    _, key = add_outside_file(lake, TABLE, rows=4)
    with lake.filesystem.open_input_file(lake.path(key)) as f:
        changed = {d.strftime("%Y-%m") for d in pq.read_table(f)["flight_date"].to_pylist()}
    with serving.connect(autocommit=True) as conn:
        month = conn.execute(
            f"DELETE FROM gold.{TABLE} WHERE (tableoid, ctid) IN (SELECT tableoid, ctid "
            f"FROM gold.{TABLE} WHERE to_char(flight_date, 'YYYY-MM') <> ALL(%s) LIMIT 1) "
            "RETURNING to_char(flight_date, 'YYYY-MM')",
            (sorted(changed),),
        ).fetchone()[0]
    result = materialize(f"key:rds/gold/{TABLE}", lake, serving)
    (mat,) = result.get_asset_materialization_events()
    assert mat.materialization.metadata["months_reloaded"].value == ", ".join(sorted(changed))
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["fingerprint_matches"].passed
    assert checks["fingerprint_matches"].metadata["differing_segments"].value == month
    assert not checks["row_count_matches"].passed
    rows = checks["row_count_matches"].metadata
    assert rows["rds_rows"].value == rows["ledger_rows"].value - 1
