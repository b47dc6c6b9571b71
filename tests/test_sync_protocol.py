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
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from platform_assets.serving import indexes, ledger
from platform_assets.serving.names import STAGE_SCHEMA, stage_comment
from platform_assets.serving.protocol import SyncRefused, sync_table
from platform_assets.specs import GOLD_BY_NAME
from platform_assets.status import table_status
from resources.lake_tables import GoldLake
from resources.sql_engine import DuckDBEngine
from resources.storage import LakeStorage
from tests.conftest import BUCKET, materialize, platform_resources

WEATHER = GOLD_BY_NAME["airport_daily_weather"]  # a plain table: every sync is one full swap
CARRIER = GOLD_BY_NAME["carrier_daily_performance"]  # month-partitioned in RDS


def _quiet(_msg: str) -> None:
    pass


def _selection(spec) -> str:
    return f"key:lake/gold/{spec.name} or key:rds/gold/{spec.name}"


def _build_and_sync(lake: LakeStorage, serving, spec) -> None:
    assert materialize(_selection(spec), platform_resources(lake, serving)).success


def _sync(lake: LakeStorage, serving, spec, **kwargs):
    return sync_table(spec, GoldLake(lake), DuckDBEngine(lake=lake), serving, log=_quiet, **kwargs)


# ---- lake edits "outside the platform" ---------------------------------------------------------


def _current_table(lake: LakeStorage, spec) -> pa.Table:
    state = GoldLake(lake).current_state(spec.name)
    return pa.concat_tables(
        pq.read_table(lake.filesystem.open_input_file(lake.path(k))) for k in state.parquet_keys
    )


def _write_file(lake: LakeStorage, spec, table: pa.Table, name: str) -> str:
    state = GoldLake(lake).current_state(spec.name)
    key = f"{state.manifest.location}/{name}"
    with lake.filesystem.open_output_stream(lake.path(key)) as out:
        pq.write_table(table, out)
    return key


def _delete_file(lake: LakeStorage, key: str) -> None:
    lake.filesystem.delete_file(lake.path(key))


def _extra_weather_rows(lake: LakeStorage, rows: int = 7) -> pa.Table:
    """New rows with keys the table does not have (made-up airports)."""
    table = _current_table(lake, WEATHER).slice(0, rows)
    origins = pa.array([f"Z{i:02d}" for i in range(rows)])
    return table.set_column(table.schema.get_field_index("origin"), "origin", origins)


def _rewrite_table(lake: LakeStorage, spec, table: pa.Table) -> None:
    """Replace every data file at the current location by one file holding `table`."""
    state = GoldLake(lake).current_state(spec.name)
    for key in state.parquet_keys:
        _delete_file(lake, key)
    _write_file(lake, spec, table, f"rewritten-{uuid.uuid4().hex[:6]}.parquet")


# ---- reading RDS ---------------------------------------------------------------------------------


def _count_and_sum(serving, spec) -> tuple[int, int]:
    with serving.connect(autocommit=True) as conn:
        n, total = conn.execute(
            f"SELECT count(*), coalesce(sum(flights), 0) FROM gold.{spec.name}"
        ).fetchone()
    return int(n), int(total)


def _ledger_row(serving, spec) -> ledger.LedgerRow | None:
    with serving.connect(autocommit=True) as conn:
        return ledger.read(conn, spec.name)


def _status(lake, serving, spec):
    with serving.connect(autocommit=True) as conn:
        return table_status(spec, GoldLake(lake), conn)


def _history_rows(serving) -> int:
    with serving.connect(autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM platform.sync_history").fetchone()[0]


def _stage_tables(serving) -> list[str]:
    with serving.connect(autocommit=True) as conn:
        return sorted(
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (STAGE_SCHEMA,)
            ).fetchall()
        )


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


class Reader(threading.Thread):
    """Queries a Gold table in a loop on its own connection, recording every answer and error."""

    def __init__(self, conninfo: str, spec):
        super().__init__(daemon=True)
        self.conninfo, self.spec = conninfo, spec
        self.stop = threading.Event()
        self.results: list[tuple[int, int]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            while not self.stop.is_set():
                try:
                    n, total = conn.execute(
                        f"SELECT count(*), sum(flights) FROM gold.{self.spec.name}"
                    ).fetchone()
                    self.results.append((int(n), int(total or 0)))
                except Exception as exc:  # noqa: BLE001 - every error is a test failure
                    self.errors.append(f"{type(exc).__name__}: {exc}")


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
    base = _count_and_sum(serving, WEATHER)
    extra = _extra_weather_rows(lake)
    bigger = (base[0] + len(extra), base[1] + pc.sum(extra["flights"]).as_py())
    assert base[0] > 1000 and bigger[0] > base[0]

    reader = Reader(serving.conninfo(), WEATHER)
    reader.start()
    try:
        time.sleep(0.2)
        added = None
        for i in range(12):
            if added is None:
                added = _write_file(lake, WEATHER, extra, f"extra-{i}.parquet")
                expected = bigger
            else:
                _delete_file(lake, added)
                added, expected = None, base
            result = _sync(lake, serving, WEATHER)
            assert result.action == "loaded"
            assert result.row_count == expected[0]
            assert _count_and_sum(serving, WEATHER) == expected
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
    expected = _count_and_sum(serving, CARRIER)
    oids_before = _relation_oids(serving, CARRIER)
    reader = Reader(serving.conninfo(), CARRIER)
    reader.start()
    try:
        for _ in range(4):
            result = _sync(local_lake, serving, CARRIER, force=True)
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
    row_before = _ledger_row(serving, spec)
    history_before = _history_rows(serving)
    oids_before = _relation_oids(serving, spec)

    for _ in range(2):
        result = _sync(lake, serving, spec)
        assert result.action == "unchanged"
        assert result.lake_version == row_before.lake_version
        assert result.row_count == row_before.row_count
        assert result.swap_attempts == 0 and result.partitions_reloaded is None

    assert asdict(_ledger_row(serving, spec)) == asdict(row_before)  # loaded_at included
    assert _history_rows(serving) == history_before
    assert _relation_oids(serving, spec) == oids_before
    assert _status(lake, serving, spec).in_sync

    # the same through Dagster: re-materializing the RDS asset reports "unchanged"
    result = materialize(f"key:rds/gold/{spec.name}", platform_resources(lake, serving))
    meta = result.asset_materializations_for_node(f"rds_gold_{spec.name}")[0].metadata
    assert meta["action"].value == "unchanged"
    assert asdict(_ledger_row(serving, spec)) == asdict(row_before)


# ---- guards --------------------------------------------------------------------------------------


def test_empty_lake_table_is_refused_and_old_copy_keeps_serving(synced):
    lake, serving, spec = synced
    before = _count_and_sum(serving, spec)
    row_before = _ledger_row(serving, spec)
    assert before[0] > 0

    _rewrite_table(lake, spec, _current_table(lake, spec).slice(0, 0))
    with pytest.raises(SyncRefused, match="empty") as info:
        _sync(lake, serving, spec)
    assert info.value.numbers["lake_rows"] == 0
    assert info.value.numbers["serving_rows"] == before[0]
    assert _count_and_sum(serving, spec) == before
    assert asdict(_ledger_row(serving, spec)) == asdict(row_before)
    assert not _status(lake, serving, spec).in_sync
    assert _stage_tables(serving) == []

    result = _sync(lake, serving, spec, force=True)
    assert result.action == "loaded" and result.row_count == 0
    assert _count_and_sum(serving, spec) == (0, 0)
    status = _status(lake, serving, spec)
    assert status.in_sync and status.rds_rows == status.lake_rows == 0


def test_empty_lake_table_through_dagster_fails_the_run_and_force_publishes(weather):
    lake, serving = weather
    before = _count_and_sum(serving, WEATHER)
    _rewrite_table(lake, WEATHER, _current_table(lake, WEATHER).slice(0, 0))
    selection = f"key:rds/gold/{WEATHER.name}"

    result = materialize(selection, platform_resources(lake, serving), raise_on_error=False)
    assert not result.success
    refused = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "in_sync_with_lake"
    ]
    assert refused and not refused[0].passed
    assert refused[0].metadata["lake_rows"].value == 0
    assert refused[0].metadata["serving_rows"].value == before[0]
    assert _count_and_sum(serving, WEATHER) == before

    forced = {"ops": {f"rds_gold_{WEATHER.name}": {"config": {"force": True}}}}
    result = materialize(selection, platform_resources(lake, serving), run_config=forced)
    assert result.success
    assert _count_and_sum(serving, WEATHER) == (0, 0)


def test_shrink_guard_refuses_losing_more_than_the_limit(synced):
    lake, serving, spec = synced
    assert spec.max_shrink_ratio == 0.5
    full = _current_table(lake, spec)
    before = _count_and_sum(serving, spec)
    row_before = _ledger_row(serving, spec)

    kept = int(len(full) * 0.4)  # loses 60% > 50%
    _rewrite_table(lake, spec, full.slice(0, kept))
    with pytest.raises(SyncRefused, match="shrink") as info:
        _sync(lake, serving, spec)
    assert info.value.numbers == {
        "lake_rows": kept,
        "serving_rows": before[0],
        "max_shrink_ratio": 0.5,
    }
    assert str(before[0]) in str(info.value) and str(kept) in str(info.value)
    assert _count_and_sum(serving, spec) == before
    assert asdict(_ledger_row(serving, spec)) == asdict(row_before)
    assert _stage_tables(serving) == []

    kept = int(len(full) * 0.7)  # loses 30%: within the limit
    _rewrite_table(lake, spec, full.slice(0, kept))
    result = _sync(lake, serving, spec)
    assert result.action == "loaded" and result.row_count == kept
    assert _count_and_sum(serving, spec)[0] == kept
    assert _status(lake, serving, spec).in_sync


def test_shrink_guard_can_be_forced(weather):
    lake, serving = weather
    full = _current_table(lake, WEATHER)
    _rewrite_table(lake, WEATHER, full.slice(0, 10))
    with pytest.raises(SyncRefused):
        _sync(lake, serving, WEATHER)
    result = _sync(lake, serving, WEATHER, force=True)
    assert result.row_count == 10
    assert _count_and_sum(serving, WEATHER)[0] == 10


# ---- crash leftovers -----------------------------------------------------------------------------


def test_leftover_staging_of_a_crashed_sync_is_dropped(synced):
    lake, serving, spec = synced
    # a change in the lake, so the next sync has work to do, and the staging table a sync of
    # that state creates, left behind half-loaded by a crashed run (same name it will use)
    extra = _current_table(lake, spec).slice(0, 3)
    column = "origin" if spec is WEATHER else "carrier"
    extra = extra.set_column(
        extra.schema.get_field_index(column), column, pa.array(["Q1", "Q2", "Q3"])
    )
    _write_file(lake, spec, extra, "late.parquet")
    crashed = [f"{spec.name}__stage", f"{spec.name}__p201301", f"{spec.name}__all"]
    other = "route_monthly_performance__stage"
    for name in crashed:
        _leave_staging(serving, spec.name, name)
    _leave_staging(serving, "route_monthly_performance", other)
    before = _count_and_sum(serving, spec)[0]

    result = _sync(lake, serving, spec)

    assert result.action == "loaded"
    assert sorted(result.dropped_leftovers) == sorted(crashed)
    assert _stage_tables(serving) == [other]  # another table's staging is not ours to drop
    assert _count_and_sum(serving, spec)[0] == before + 3
    assert _status(lake, serving, spec).in_sync


def test_leftovers_are_dropped_even_when_nothing_changed(weather):
    lake, serving = weather
    name = f"{WEATHER.name}__stage"
    _leave_staging(serving, WEATHER.name, name)
    result = _sync(lake, serving, WEATHER)
    assert result.action == "unchanged"
    assert result.dropped_leftovers == [name]
    assert _stage_tables(serving) == []


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
    status = _status(lake, serving, WEATHER)
    assert status.in_sync
    published_version = status.lake_version

    extra = _extra_weather_rows(lake, rows=5)
    _write_file(lake, WEATHER, extra, "uploaded-by-hand.parquet")

    status = _status(lake, serving, WEATHER)
    assert not status.in_sync
    assert status.lake_version.startswith(f"{published_version}+")
    assert status.rds_version == published_version
    assert status.lake_rows == status.rds_rows + 5

    result = _sync(lake, serving, WEATHER)
    assert result.action == "loaded"
    assert result.lake_version == status.lake_version

    status = _status(lake, serving, WEATHER)
    assert status.in_sync
    assert status.rds_rows == status.lake_rows
    assert _count_and_sum(serving, WEATHER)[0] == status.lake_rows
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
    status = _status(local_lake, serving, WEATHER)
    assert not status.in_sync and status.rds_rows is None and status.lake_rows > 0
    _sync(local_lake, serving, WEATHER)
    assert _status(local_lake, serving, WEATHER).in_sync
    assert dg.AssetKey(["rds", "gold", WEATHER.name])  # keys stay as the snapshot says


def test_same_month_can_be_reloaded_twice_for_the_same_lake_state(local_lake, serving):
    """`goldctl sync <t> --month M` twice in a row: the second must not trip on the first's
    index names (the staging name repeats for the same lake state)."""
    _build_and_sync(local_lake, serving, CARRIER)
    expected = _count_and_sum(serving, CARRIER)
    for _ in range(3):
        result = _sync(local_lake, serving, CARRIER, months=["2013-07"])
        assert result.partitions_reloaded == ["2013-07"]
    assert _count_and_sum(serving, CARRIER) == expected
    assert _stage_tables(serving) == []
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
    before = _ledger_row(serving, spec)

    result = _sync(lake, serving, wider)

    assert result.action == "unchanged"
    assert result.indexes_created == [f"{spec.name}_flights_cancelled_idx"]
    with serving.connect(autocommit=True) as conn:
        assert ("flights", "cancelled") in indexes.existing(conn, spec.name)
    assert asdict(_ledger_row(serving, spec)) == asdict(before)
    assert _sync(lake, serving, wider).indexes_created == []
