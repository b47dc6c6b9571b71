"""Exact copies through the real assets: every type round-trips cell by cell (plain and
partitioned copies, the serving database and the build in other time zones), the smallest hand
change of any cell turns `fingerprint_matches` red naming its month, and data PostgreSQL cannot
hold (a NUL in text, a 64-byte column name) is refused by name while the other tables sync."""

from __future__ import annotations

import time

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from platform_assets import copy_checks
from platform_assets.gold_assets import build_gold_assets
from platform_assets.keys import rds_key
from platform_assets.lake.tables import GoldLake
from platform_assets.serving import ledger
from platform_assets.specs import GOLD_BY_NAME, GoldTableSpec
from tests import type_matrix
from tests.conftest import platform_resources
from tests.support.goldctl import goldctl, goldctl_env
from tests.support.in_process import tick

NAME = "type_matrix"


def _spec(tmp_path, partitioned: bool, sql: str | None = None, name: str = NAME):
    (tmp_path / "sql" / "gold").mkdir(parents=True, exist_ok=True)
    (tmp_path / "sql" / "gold" / f"{name}.sql").write_text(sql or type_matrix.athena_sql())
    return GoldTableSpec(
        name=name,
        description="every type the Gold SQL can produce",
        primary_key=("d", "id"),
        segment_column="d",
        partitioned=partitioned,
        sql_dir=tmp_path / "sql",
    )


def _lake_rows(lake, name: str) -> pa.Table:
    state = GoldLake(lake).current_state(name)
    parts = []
    for key in state.parquet_keys:
        with lake.filesystem.open_input_file(lake.path(key)) as f:
            parts.append(pq.read_table(f))
    return pa.concat_tables(parts).sort_by("id")


def _rds_rows(serving, name: str) -> tuple[list[str], list[tuple]]:
    with serving.connect(autocommit=True) as conn:
        cur = conn.execute(f"SELECT * FROM gold.{name} ORDER BY id")
        return [c.name for c in cur.description], cur.fetchall()


def _db_name(serving) -> str:
    with serving.connect(autocommit=True) as conn:
        return conn.execute("SELECT current_database()").fetchone()[0]


@pytest.mark.parametrize(
    ("partitioned", "rds_zone", "build_zone"),
    [(False, "UTC", None), (True, "America/St_Johns", "Asia/Kathmandu")],
)
def test_every_type_round_trips_exactly(
    tmp_path, local_lake, serving, monkeypatch, partitioned, rds_zone, build_zone
):
    if build_zone:
        monkeypatch.setenv("TZ", build_zone)
        time.tzset()
    with serving.connect(autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {_db_name(serving)} SET timezone = '{rds_zone}'")
    spec = _spec(tmp_path, partitioned)
    resources = platform_resources(local_lake, serving)
    try:
        result = dg.materialize(build_gold_assets([spec]), resources=resources)
    finally:
        monkeypatch.delenv("TZ", raising=False)
        time.tzset()
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["fingerprint_matches"] and checks["in_sync_with_lake"], checks

    lake_rows = _lake_rows(local_lake, NAME)
    expected = type_matrix.table()
    names, rds_rows = _rds_rows(serving, NAME)
    assert names == expected.column_names == lake_rows.column_names
    assert len(rds_rows) == type_matrix.ROWS == len(lake_rows)
    for column in expected.column_names:
        assert lake_rows.schema.field(column).type == expected.schema.field(column).type, column
        want, lake_values = expected[column].to_pylist(), lake_rows[column].to_pylist()
        rds_values = [row[names.index(column)] for row in rds_rows]
        for i, (w, lv, rv) in enumerate(zip(want, lake_values, rds_values, strict=True)):
            if w is None:
                assert lv is None and rv is None, (column, i)
            else:
                assert type_matrix.same(w, lv) and type_matrix.same(w, rv), (column, i, w, lv, rv)

    with serving.connect(autocommit=True) as conn:  # the PostgreSQL types, by the one mapping
        types = dict(
            conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0",
                (f"gold.{NAME}",),
            ).fetchall()
        )
    assert types["dec"] == "numeric(38,10)" and types["dec2"] == "numeric(10,2)"
    assert types["i8"] == types["i16"] == "smallint" and types["i32"] == "integer"
    assert types["f"] == "double precision" and types["bin"] == "bytea"
    assert types["tz"] == "timestamp with time zone"

    if not partitioned:
        _every_smallest_change_is_caught(serving, spec)


def _every_smallest_change_is_caught(serving, spec) -> None:
    """For every cell value of every column: change it by hand, by the smallest step, in a
    transaction; the real check turns red naming that row's month; roll back."""
    key = rds_key(spec.name)
    with serving.connect() as conn:
        row = ledger.read(conn, spec.name)
        assert copy_checks.fingerprint_check(conn, key, spec, row).passed
        for column in type_matrix.COLUMNS:
            for i in range(len(type_matrix.COLUMNS[column][2])):
                old = type_matrix.value(column, i)
                new = type_matrix.smallest_change(column, old)
                if isinstance(old, float) and old != old:
                    new = None  # PostgreSQL keeps one NaN: its sign is not a value to tamper
                conn.execute(f'UPDATE gold.{spec.name} SET "{column}" = %s WHERE id = %s', (new, i))
                check = copy_checks.fingerprint_check(conn, key, spec, row)
                conn.rollback()
                assert not check.passed, (column, i, old, new)
                differing = check.metadata["differing_segments"].value
                assert differing == type_matrix.month(i), (column, i, differing)


def _outside_file(lake, table: str, change) -> tuple[dict, pa.Table]:
    """One Parquet file written by hand into `table`'s current version: the first row with a new
    key and `change(table) -> table` applied. Returns the row's key and the data."""
    state = GoldLake(lake).current_state(table)
    with lake.filesystem.open_input_file(lake.path(state.parquet_keys[0])) as f:
        data = pq.read_table(f).slice(0, 1)
    spec = GOLD_BY_NAME[table]
    text_key = next(c for c in spec.primary_key if pa.types.is_string(data.schema.field(c).type))
    idx = data.schema.get_field_index(text_key)
    data = change(data.set_column(idx, text_key, pa.array(["ZZ_outside"], pa.string())))
    key = f"{state.manifest.location}/part-outside.parquet"
    with lake.filesystem.open_output_stream(lake.path(f"{key}.tmp")) as out:
        pq.write_table(data, out)
    lake.filesystem.move(lake.path(f"{key}.tmp"), lake.path(key))
    return {c: data[c][0].as_py() for c in spec.primary_key}, data


def _set(column: str, value, arrow_type=None):
    def change(data: pa.Table) -> pa.Table:
        idx = data.schema.get_field_index(column)
        t = arrow_type or data.schema.field(column).type
        return data.set_column(idx, column, pa.array([value], t))

    return change


def test_nul_text_is_refused_by_name_nan_from_outside_syncs_and_others_go_on(built, local_lake):
    instance, resources = built
    serving = resources["serving"]
    carrier, weather = "carrier_daily_performance", "airport_daily_weather"
    with serving.connect(autocommit=True) as conn:
        served = conn.execute(f"SELECT count(*) FROM gold.{carrier}").fetchone()[0]
    key, _ = _outside_file(local_lake, carrier, _set("carrier_name", "Air\x00Bad"))
    float_col = next(
        f.name for f in _lake_rows_schema(local_lake, weather) if pa.types.is_floating(f.type)
    )
    _outside_file(local_lake, weather, _set(float_col, float("nan")))

    done = goldctl("sync", env=goldctl_env(local_lake, serving))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"gold.{carrier}" in lines[0] and "carrier_name" in lines[0] and "NUL" in lines[0]
    assert "carrier=ZZ_outside" in lines[0]

    with serving.connect(autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM gold.{carrier}").fetchone()[0] == served
        nan_rows = conn.execute(
            f"SELECT count(*) FROM gold.{weather} WHERE \"{float_col}\" = 'NaN'::float8"
        ).fetchone()[0]
        refusals = ledger.read_refusals(conn)
    assert nan_rows == 1  # NaN is a value: copied exactly, not a crash
    assert carrier in refusals and "NUL" in refusals[carrier][1] and weather not in refusals

    result = tick(instance, resources, cursor=None)  # the refused state is not requested again
    assert rds_key(carrier) not in {k for r in result.run_requests for k in r.asset_selection}


def _lake_rows_schema(lake, table: str) -> pa.Schema:
    state = GoldLake(lake).current_state(table)
    with lake.filesystem.open_input_file(lake.path(state.parquet_keys[0])) as f:
        return pq.read_schema(f)


def test_a_64_byte_column_name_fails_at_definition_naming_the_spec(tmp_path):
    long = "c" * 64
    spec = _spec(tmp_path, False, f"SELECT DATE '2013-01-01' AS d, 1 AS id, 2 AS {long}\n")
    with pytest.raises(ValueError, match=f"GoldTableSpec {NAME}: .*{long}.*63 bytes"):
        build_gold_assets([spec])
    fits = _spec(tmp_path, False, f"SELECT DATE '2013-01-01' AS d, 1 AS id, 2 AS {long[:63]}\n")
    assert len(build_gold_assets([fits])) == 2


def test_a_type_without_an_exact_home_fails_the_build_by_name(tmp_path, local_lake, serving):
    sql = "SELECT DATE '2013-01-01' AS d, CAST(1 AS BIGINT) AS id, CAST('12:00' AS TIME) AS at\n"
    lake_asset = build_gold_assets([_spec(tmp_path, False, sql)])[0]
    result = dg.materialize(
        [lake_asset], resources=platform_resources(local_lake, serving), raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert f"gold.{NAME}" in description and "column at" in description, description
    assert local_lake.list_keys(f"gold/{NAME}") == []  # no version folder left without a manifest
