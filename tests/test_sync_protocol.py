"""The sync protocol (lake Gold -> RDS) against a real PostgreSQL: atomic swaps under readers,
idempotence, the empty/shrink guards, crash leftovers and changes made outside the platform.

Lake changes "outside the platform" are made the way an analyst would: by adding, removing or
rewriting Parquet files at the table's current lake location (the manifest stays as it was).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, replace

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest

from platform_assets.serving import indexes, ledger
from platform_assets.serving.names import STAGE_SCHEMA, stage_comment
from platform_assets.serving.protocol import SyncRefused
from platform_assets.specs import GOLD_BY_NAME
from resources.storage import LakeStorage
from tests.conftest import BUCKET, materialize, platform_resources
from tests.support.copies import (
    Reader,
    copy_status,
    count_and_sum,
    ledger_row,
    query,
    stage_tables,
    sync_spec,
)
from tests.support.goldctl import wait_for
from tests.support.lake_edits import (
    add_outside_file,
    current_table,
    delete_file,
    rewrite_table,
    write_file,
)

WEATHER = GOLD_BY_NAME["airport_daily_weather"]  # a plain table: every sync is one full swap
CARRIER = GOLD_BY_NAME["carrier_daily_performance"]  # month-partitioned in RDS


def _selection(spec) -> str:
    return f"key:lake/gold/{spec.name} or key:rds/gold/{spec.name}"


def _build_and_sync(lake: LakeStorage, serving, spec) -> None:
    assert materialize(_selection(spec), platform_resources(lake, serving)).success


# ---- lake edits "outside the platform" ---------------------------------------------------------


def _extra_weather_rows(lake: LakeStorage, rows: int = 7) -> pa.Table:
    """New rows with keys the table does not have (made-up airports)."""
    table = current_table(lake, WEATHER).slice(0, rows)
    origins = pa.array([f"Z{i:02d}" for i in range(rows)])
    return table.set_column(table.schema.get_field_index("origin"), "origin", origins)


# ---- reading RDS ---------------------------------------------------------------------------------


def _history_rows(serving) -> int:
    with serving.connect(autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM platform.sync_history").fetchone()[0]


def _leave_staging(serving, owner: str, name: str) -> None:
    """A staging table as a crashed sync of `owner` leaves it: marked, half-loaded."""
    with serving.connect(autocommit=True) as conn:
        ledger.bootstrap(conn, serving.dashboard_role)
        conn.execute(f'CREATE TABLE {STAGE_SCHEMA}."{name}" (junk int)')
        conn.execute(f'INSERT INTO {STAGE_SCHEMA}."{name}" VALUES (1), (2)')
        conn.execute(f"COMMENT ON TABLE {STAGE_SCHEMA}.\"{name}\" IS '{stage_comment(owner)}'")


def _relation_oids(serving, spec) -> dict[str, int]:
    """OIDs of the live table and its partitions: a reload creates new relations."""
    with serving.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'gold' AND c.relkind IN ('r', 'p') "
            "AND (c.relname = %s OR starts_with(c.relname, %s))",
            (spec.name, f"{spec.name}__p"),
        ).fetchall()
    return {name: int(oid) for name, oid in rows}


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def weather(local_lake, serving):
    _build_and_sync(local_lake, serving, WEATHER)
    return local_lake, serving


@pytest.fixture(params=[WEATHER, CARRIER], ids=lambda s: s.name)
def synced(request, local_lake, serving):
    """One table built in the lake and synced to RDS: the plain one and a partitioned one."""
    _build_and_sync(local_lake, serving, request.param)
    return local_lake, serving, request.param


# ---- readers never see a partial table -----------------------------------------------------------


def test_readers_see_old_or_new_table_never_partial_while_versions_alternate(weather):
    lake, serving = weather
    base = count_and_sum(serving, WEATHER)
    extra = _extra_weather_rows(lake)
    bigger = (base[0] + len(extra), base[1] + pc.sum(extra["flights"]).as_py())
    assert base[0] > 1000 and bigger[0] > base[0]

    reader = Reader(serving.conninfo(), WEATHER.name)
    reader.start()
    try:
        time.sleep(0.2)
        added = None
        for i in range(12):
            if added is None:
                added = write_file(lake, WEATHER, extra, f"extra-{i}.parquet")
                expected = bigger
            else:
                delete_file(lake, added)
                added, expected = None, base
            result = sync_spec(lake, serving, WEATHER)
            assert result.action == "loaded"
            assert result.row_count == expected[0]
            assert count_and_sum(serving, WEATHER) == expected
        time.sleep(0.2)
    finally:
        reader.stop.set()
        reader.join(timeout=30)

    assert not reader.errors, reader.errors[:5]
    assert len(reader.results) > 50, "the reader barely ran"
    assert set(reader.results) <= {base, bigger}, set(reader.results) - {base, bigger}
    assert set(reader.results) == {base, bigger}  # it saw both versions, swaps happened under it


def test_forced_resyncs_of_a_partitioned_table_never_show_a_missing_month(local_lake, serving):
    _build_and_sync(local_lake, serving, CARRIER)
    expected = count_and_sum(serving, CARRIER)
    oids_before = _relation_oids(serving, CARRIER)
    reader = Reader(serving.conninfo(), CARRIER.name)
    reader.start()
    try:
        for _ in range(4):
            result = sync_spec(local_lake, serving, CARRIER, force=True)
            assert result.action == "loaded"
            assert len(result.partitions_reloaded) == 12
    finally:
        reader.stop.set()
        reader.join(timeout=30)
    assert not reader.errors, reader.errors[:5]
    assert len(reader.results) > 20
    assert set(reader.results) == {expected}
    # every month really was replaced (new relations), not skipped
    oids_after = _relation_oids(serving, CARRIER)
    children = [n for n in oids_before if n != CARRIER.name]
    assert len(children) == 12
    assert all(oids_after[n] != oids_before[n] for n in children)


# ---- idempotence ---------------------------------------------------------------------------------


def test_unchanged_lake_version_does_nothing(synced):
    lake, serving, spec = synced
    row_before = ledger_row(serving, spec)
    history_before = _history_rows(serving)
    oids_before = _relation_oids(serving, spec)

    for _ in range(2):
        result = sync_spec(lake, serving, spec)
        assert result.action == "unchanged"
        assert result.lake_version == row_before.lake_version
        assert result.row_count == row_before.row_count
        assert result.swap_attempts == 0 and result.partitions_reloaded is None

    assert asdict(ledger_row(serving, spec)) == asdict(row_before)  # loaded_at included
    assert _history_rows(serving) == history_before
    assert _relation_oids(serving, spec) == oids_before
    assert copy_status(lake, serving, spec).in_sync

    # the same through Dagster: re-materializing the RDS asset reports "unchanged"
    result = materialize(f"key:rds/gold/{spec.name}", platform_resources(lake, serving))
    meta = result.asset_materializations_for_node(f"rds_gold_{spec.name}")[0].metadata
    assert meta["action"].value == "unchanged"
    assert asdict(ledger_row(serving, spec)) == asdict(row_before)


# ---- guards --------------------------------------------------------------------------------------


def test_empty_lake_table_is_refused_and_old_copy_keeps_serving(synced):
    lake, serving, spec = synced
    before = count_and_sum(serving, spec)
    row_before = ledger_row(serving, spec)
    assert before[0] > 0

    rewrite_table(lake, spec, current_table(lake, spec).slice(0, 0))
    with pytest.raises(SyncRefused, match="empty") as info:
        sync_spec(lake, serving, spec)
    assert info.value.numbers["lake_rows"] == 0
    assert info.value.numbers["serving_rows"] == before[0]
    assert count_and_sum(serving, spec) == before
    assert asdict(ledger_row(serving, spec)) == asdict(row_before)
    assert not copy_status(lake, serving, spec).in_sync
    assert stage_tables(serving) == []

    result = sync_spec(lake, serving, spec, force=True)
    assert result.action == "loaded" and result.row_count == 0
    assert count_and_sum(serving, spec) == (0, 0)
    status = copy_status(lake, serving, spec)
    assert status.in_sync and status.rds_rows == status.lake_rows == 0


def test_empty_lake_table_through_dagster_fails_the_run_and_force_publishes(weather):
    lake, serving = weather
    before = count_and_sum(serving, WEATHER)
    rewrite_table(lake, WEATHER, current_table(lake, WEATHER).slice(0, 0))
    selection = f"key:rds/gold/{WEATHER.name}"

    result = materialize(selection, platform_resources(lake, serving), raise_on_error=False)
    assert not result.success
    refused = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "in_sync_with_lake"
    ]
    assert refused and not refused[0].passed
    assert refused[0].metadata["lake_rows"].value == 0
    assert refused[0].metadata["serving_rows"].value == before[0]
    assert count_and_sum(serving, WEATHER) == before

    forced = {"ops": {f"rds_gold_{WEATHER.name}": {"config": {"force": True}}}}
    result = materialize(selection, platform_resources(lake, serving), run_config=forced)
    assert result.success
    assert count_and_sum(serving, WEATHER) == (0, 0)


def test_shrink_guard_refuses_losing_more_than_the_limit(synced):
    lake, serving, spec = synced
    assert spec.max_shrink_ratio == 0.5
    full = current_table(lake, spec)
    before = count_and_sum(serving, spec)
    row_before = ledger_row(serving, spec)

    kept = int(len(full) * 0.4)  # loses 60% > 50%
    rewrite_table(lake, spec, full.slice(0, kept))
    with pytest.raises(SyncRefused, match="shrink") as info:
        sync_spec(lake, serving, spec)
    assert info.value.numbers == {
        "lake_rows": kept,
        "serving_rows": before[0],
        "max_shrink_ratio": 0.5,
    }
    assert str(before[0]) in str(info.value) and str(kept) in str(info.value)
    assert count_and_sum(serving, spec) == before
    assert asdict(ledger_row(serving, spec)) == asdict(row_before)
    assert stage_tables(serving) == []

    kept = int(len(full) * 0.7)  # loses 30%: within the limit
    rewrite_table(lake, spec, full.slice(0, kept))
    result = sync_spec(lake, serving, spec)
    assert result.action == "loaded" and result.row_count == kept
    assert count_and_sum(serving, spec)[0] == kept
    assert copy_status(lake, serving, spec).in_sync


def test_shrink_guard_can_be_forced(weather):
    lake, serving = weather
    full = current_table(lake, WEATHER)
    rewrite_table(lake, WEATHER, full.slice(0, 10))
    with pytest.raises(SyncRefused):
        sync_spec(lake, serving, WEATHER)
    result = sync_spec(lake, serving, WEATHER, force=True)
    assert result.row_count == 10
    assert count_and_sum(serving, WEATHER)[0] == 10


# ---- crash leftovers -----------------------------------------------------------------------------


def test_leftover_staging_of_a_crashed_sync_is_dropped(synced):
    lake, serving, spec = synced
    # a change in the lake, so the next sync has work to do, and the staging table a sync of
    # that state creates, left behind half-loaded by a crashed run (same name it will use)
    extra = current_table(lake, spec).slice(0, 3)
    column = "origin" if spec is WEATHER else "carrier"
    extra = extra.set_column(
        extra.schema.get_field_index(column), column, pa.array(["Q1", "Q2", "Q3"])
    )
    write_file(lake, spec, extra, "late.parquet")
    crashed = [f"{spec.name}__stage", f"{spec.name}__p201301", f"{spec.name}__all"]
    other = "route_monthly_performance__stage"
    for name in crashed:
        _leave_staging(serving, spec.name, name)
    _leave_staging(serving, "route_monthly_performance", other)
    before = count_and_sum(serving, spec)[0]

    result = sync_spec(lake, serving, spec)

    assert result.action == "loaded"
    assert sorted(result.dropped_leftovers) == sorted(crashed)
    assert stage_tables(serving) == [other]  # another table's staging is not ours to drop
    assert count_and_sum(serving, spec)[0] == before + 3
    assert copy_status(lake, serving, spec).in_sync


def test_a_sync_that_published_between_the_shared_read_and_the_load_is_seen(
    weather, tmp_path, monkeypatch
):
    """An unforced sync reads the copy under the sync lock held shared, then takes the lock for
    itself to load. A sync that published in between (here a forced one) is noticed: the facts
    are read again and the copy, now in sync, is left alone (reloading from the stale read
    would redo the load, or drop units the other sync attached)."""
    lake, serving = weather
    add_outside_file(lake, WEATHER.name, rows=3)
    marker = tmp_path / "paused"
    monkeypatch.setenv("GOLD_SYNC_PAUSE_AT", "exclusive")
    monkeypatch.setenv("GOLD_SYNC_PAUSE_FILE", str(marker))
    results = []
    first = threading.Thread(target=lambda: results.append(sync_spec(lake, serving, WEATHER)))
    first.start()
    try:
        wait_for(marker.exists, 120, "the unforced sync to stop before taking the lock")
        assert sync_spec(lake, serving, WEATHER, force=True).action == "loaded"
    finally:
        marker.unlink(missing_ok=True)
        first.join(120)
    assert [r.action for r in results] == ["unchanged"], results
    assert copy_status(lake, serving, WEATHER).in_sync


def test_a_sync_that_published_between_a_load_and_its_checks_is_judged_as_the_copy_is(
    weather, tmp_path, monkeypatch
):
    """A load commits with its lock, then holds the lock shared again to judge its checks. A
    sync that published in between (here a forced one of a newer lake state) is noticed: the
    checks judge the copy as it is, against the lake read now (judging from the load's own
    facts would call the newer copy out of sync with the older snapshot); without one, they
    judge from the run's facts."""
    from functools import partial

    from platform_assets.gold_assets import rds_checks
    from platform_assets.keys import RDS_CHECKS
    from platform_assets.lake.tables import GoldLake
    from platform_assets.serving.protocol import sync_table
    from resources.sql_engine import DuckDBEngine

    lake, serving = weather
    gold, engine = GoldLake(lake), DuckDBEngine(lake=lake)
    checks = partial(rds_checks.sync_results, WEATHER, gold, engine, serving, set(RDS_CHECKS))
    judged = []

    def judge(run):
        judged.append(run.replaced)
        return checks(run)

    def load() -> object:
        return sync_table(WEATHER, gold, engine, serving, log=lambda _: None, judge=judge)

    add_outside_file(lake, WEATHER.name, rows=3)
    assert load().action == "loaded" and judged == [False]  # nothing in between
    add_outside_file(lake, WEATHER.name, rows=3)
    marker = tmp_path / "paused"
    monkeypatch.setenv("GOLD_SYNC_PAUSE_AT", "judge")
    monkeypatch.setenv("GOLD_SYNC_PAUSE_FILE", str(marker))
    results = []
    first = threading.Thread(target=lambda: results.append(load()))
    first.start()
    try:
        wait_for(marker.exists, 120, "the load to stop before its checks")
        monkeypatch.delenv("GOLD_SYNC_PAUSE_AT")
        add_outside_file(lake, WEATHER.name, rows=3)  # a newer state, loaded by the forced sync
        assert sync_spec(lake, serving, WEATHER, force=True).action == "loaded"
    finally:
        marker.unlink(missing_ok=True)
        first.join(120)
    (result,) = results
    assert result.action == "loaded" and judged == [False, True]
    outcome, _ = result.judged
    assert all(c.passed for c in outcome), [(c.check_name, c.metadata) for c in outcome]


def test_an_unchanged_sync_holds_the_lock_only_shared(weather):
    """A no-op sync (goldctl's, without checks to judge) never takes the lock for itself: the
    schedule's checks holding it shared do not make it wait (it would give up after 1 s)."""
    from platform_assets import copy_checks
    from platform_assets.serving.locks import LockBusy

    lake, serving = weather
    impatient = serving.model_copy(update={"sync_lock_wait_s": 1.0})
    with serving.connect(autocommit=True) as checks, checks.transaction():
        copy_checks.hold_sync_lock(checks, WEATHER.name, 10)
        assert sync_spec(lake, impatient, WEATHER).action == "unchanged"
        add_outside_file(lake, WEATHER.name, rows=3)  # a load does wait, bounded
        with pytest.raises(LockBusy):
            sync_spec(lake, impatient, WEATHER)


def test_the_ledger_says_when_the_copy_was_published_not_when_its_load_began(
    weather, tmp_path, monkeypatch
):
    """A load runs in the sync lock's transaction, opened long before its publish: the ledger's
    `loaded_at` (the badge's sync age, the lag's floor) is the publish's time all the same."""
    from platform_assets.serving import pausepoints

    lake, serving = weather
    add_outside_file(lake, WEATHER.name, rows=3)
    marker = tmp_path / "paused"
    monkeypatch.setenv("GOLD_SYNC_PAUSE_AT", "verify")  # staged, not published yet
    monkeypatch.setenv("GOLD_SYNC_PAUSE_FILE", str(marker))
    monkeypatch.setattr(pausepoints, "_passed", set())
    results = []
    first = threading.Thread(target=lambda: results.append(sync_spec(lake, serving, WEATHER)))
    first.start()
    try:
        wait_for(marker.exists, 120, "the load to stop before its publish")
        (during,) = query(serving, "SELECT clock_timestamp()")[0]
    finally:
        marker.unlink(missing_ok=True)
        first.join(120)
    assert [r.action for r in results] == ["loaded"]
    (loaded_at,) = query(
        serving,
        "SELECT loaded_at FROM platform.sync_ledger WHERE table_name = %s AND partition_key = ''",
        (WEATHER.name,),
    )[0]
    assert loaded_at > during


def test_a_load_holds_no_lock_on_the_live_copy_until_its_publish(synced, tmp_path, monkeypatch):
    """A load runs in the sync lock's transaction for its whole length; what it reads of the live
    copy there (the room check sizes it) must not keep a lock on it. Else a hand-run ALTER on
    the copy waits for the whole load, and every dashboard query queues behind that ALTER."""
    from platform_assets.serving import pausepoints

    lake, serving, spec = synced
    marker = tmp_path / "paused"
    monkeypatch.setenv("GOLD_SYNC_PAUSE_AT", "verify")  # staged and copied, not published yet
    monkeypatch.setenv("GOLD_SYNC_PAUSE_FILE", str(marker))
    monkeypatch.setattr(pausepoints, "_passed", set())
    results = []
    first = threading.Thread(
        target=lambda: results.append(sync_spec(lake, serving, spec, force=True))
    )
    first.start()
    try:
        wait_for(marker.exists, 120, "the load to stop before its publish")
        with serving.connect() as dba:  # as a person with psql would, and give up at once
            dba.execute("SET lock_timeout = '1s'")
            dba.execute(f"LOCK TABLE gold.{spec.name} IN ACCESS EXCLUSIVE MODE")
            dba.rollback()
    finally:
        marker.unlink(missing_ok=True)
        first.join(120)
    assert [r.action for r in results] == ["loaded"]


def test_leftovers_are_dropped_even_when_nothing_changed(weather):
    lake, serving = weather
    name = f"{WEATHER.name}__stage"
    _leave_staging(serving, WEATHER.name, name)
    result = sync_spec(lake, serving, WEATHER)
    assert result.action == "unchanged"
    assert result.dropped_leftovers == [name]
    assert stage_tables(serving) == []


# ---- changes made outside the platform -----------------------------------------------------------


def _s3_lake_with_silver(silver_lake_dir, s3_endpoint) -> LakeStorage:
    lake = LakeStorage(url=f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}", s3_endpoint_url=s3_endpoint)
    pafs.copy_files(
        str(silver_lake_dir),
        lake.path(""),
        source_filesystem=pafs.LocalFileSystem(),
        destination_filesystem=lake.filesystem,
    )
    return lake


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_parquet_file_added_outside_is_detected_and_loaded(kind, request, serving):
    if kind == "s3":
        lake = _s3_lake_with_silver(
            request.getfixturevalue("silver_lake_dir"), request.getfixturevalue("s3_endpoint")
        )
    else:
        lake = request.getfixturevalue("local_lake")
    _build_and_sync(lake, serving, WEATHER)
    status = copy_status(lake, serving, WEATHER)
    assert status.in_sync
    published_version = status.lake_version

    extra = _extra_weather_rows(lake, rows=5)
    write_file(lake, WEATHER, extra, "uploaded-by-hand.parquet")

    status = copy_status(lake, serving, WEATHER)
    assert not status.in_sync
    assert status.lake_version.startswith(f"{published_version}+")
    assert status.rds_version == published_version
    assert status.lake_rows == status.rds_rows + 5

    result = sync_spec(lake, serving, WEATHER)
    assert result.action == "loaded"
    assert result.lake_version == status.lake_version

    status = copy_status(lake, serving, WEATHER)
    assert status.in_sync
    assert status.rds_rows == status.lake_rows
    assert count_and_sum(serving, WEATHER)[0] == status.lake_rows
    with serving.connect(autocommit=True) as conn:
        origins = {
            r[0]
            for r in conn.execute(
                f"SELECT origin FROM gold.{WEATHER.name} WHERE origin LIKE 'Z%%'"
            ).fetchall()
        }
    assert origins == {f"Z{i:02d}" for i in range(5)}
    # and the Dagster checks agree
    result = materialize(f"key:rds/gold/{WEATHER.name}", platform_resources(lake, serving))
    assert all(c.passed for c in result.get_asset_check_evaluations())
    if kind == "s3":
        assert lake.uri().startswith("s3://")


def test_status_is_out_of_sync_until_the_first_sync(local_lake, serving):
    assert materialize(
        f"key:lake/gold/{WEATHER.name}", platform_resources(local_lake, serving)
    ).success
    with serving.connect(autocommit=True) as conn:
        ledger.bootstrap(conn, serving.dashboard_role)
    status = copy_status(local_lake, serving, WEATHER)
    assert not status.in_sync and status.rds_rows is None and status.lake_rows > 0
    sync_spec(local_lake, serving, WEATHER)
    assert copy_status(local_lake, serving, WEATHER).in_sync
    assert dg.AssetKey(["rds", "gold", WEATHER.name])  # keys stay as the snapshot says


def test_same_month_can_be_reloaded_twice_for_the_same_lake_state(local_lake, serving):
    """`goldctl sync <t> --month M` twice in a row: the second must not trip on the first's
    index names (the staging name repeats for the same lake state)."""
    _build_and_sync(local_lake, serving, CARRIER)
    expected = count_and_sum(serving, CARRIER)
    for _ in range(3):
        result = sync_spec(local_lake, serving, CARRIER, months=["2013-07"])
        assert result.partitions_reloaded == ["2013-07"]
    assert count_and_sum(serving, CARRIER) == expected
    assert stage_tables(serving) == []
    with serving.connect(autocommit=True) as conn:
        names = {
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'gold' "
                "AND tablename = 'carrier_daily_performance__p201307'"
            ).fetchall()
        }
    assert "carrier_daily_performance__p201307_pkey" in names


def test_index_added_to_the_spec_reaches_an_unchanged_copy(synced):
    """A copy built before an index was declared gets it on the next sync, without a reload."""
    lake, serving, spec = synced
    wider = replace(spec, indexes=(*spec.indexes, ("flights", "cancelled")))
    before = ledger_row(serving, spec)

    result = sync_spec(lake, serving, wider)

    assert result.action == "unchanged"
    assert result.indexes_created == [f"{spec.name}_flights_cancelled_idx"]
    with serving.connect(autocommit=True) as conn:
        assert ("flights", "cancelled") in indexes.existing(conn, spec.name)
    assert asdict(ledger_row(serving, spec)) == asdict(before)
    assert sync_spec(lake, serving, wider).indexes_created == []
