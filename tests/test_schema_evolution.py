"""A Gold table's columns change (added, dropped, retyped, renamed): the copy follows, atomically,
or the spec's `on_schema_change='fail'` refuses with the columns named and the old copy serves.

Changes are made the way a data engineer makes them: by editing the table's SQL file and
materializing (a copy of `platform_assets/sql` with the edit, so the real factory builds the
assets from it).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date

import dagster as dg
import pytest

from dashboard import queries as Q
from platform_assets import specs
from platform_assets.gold_assets.lake_asset import build_lake_asset
from platform_assets.gold_assets.rds_asset import build_rds_asset
from platform_assets.lake.tables import GoldLake
from platform_assets.serving.protocol import SyncRefused
from platform_assets.specs import GOLD_BY_NAME
from platform_assets.status import table_status
from tests.conftest import platform_resources

WEATHER = GOLD_BY_NAME["airport_daily_weather"]  # one unit: the whole table
CARRIER = GOLD_BY_NAME["carrier_daily_performance"]  # one unit per month


@pytest.fixture
def edit_sql(tmp_path, monkeypatch):
    """Edit a Gold table's SQL in a private copy of the SQL folder the specs read."""
    target = tmp_path / "sql"
    shutil.copytree(specs.SQL_DIR, target)
    monkeypatch.setattr(specs, "SQL_DIR", target)

    def edit(spec, old: str, new: str) -> None:
        path = target / "gold" / f"{spec.name}.sql"
        text = path.read_text()
        assert old in text, f"{old!r} not in {path.name}"
        path.write_text(text.replace(old, new))

    return edit


def build(spec, lake, serving, raise_on_error=True):
    """Materialize the lake and RDS assets the factory builds from `spec` (and its SQL now)."""
    return dg.materialize(
        [build_lake_asset(spec), build_rds_asset(spec)],
        resources=platform_resources(lake, serving),
        raise_on_error=raise_on_error,
    )


def columns(serving, spec) -> dict[str, str]:
    with serving.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (f"gold.{spec.name}",),
        ).fetchall()
    return dict(rows)


def rds_meta(result, spec) -> dict:
    mats = result.asset_materializations_for_node(f"rds_gold_{spec.name}")
    return {k: v.value for k, v in mats[0].metadata.items()}


def checks(result) -> dict[str, bool]:
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


def in_sync(lake, serving, spec) -> bool:
    with serving.connect(autocommit=True) as conn:
        return table_status(spec, GoldLake(lake), conn).in_sync


def run_page(serving, page: str) -> int:
    """Run a dashboard page's queries on the copy; returns how many rows they gave."""
    origin = None if page == "overview" else "JFK"  # Overview by airport reads the route table
    f = {"carrier": "UA", "origin": origin, "start": date(2013, 1, 1), "end": date(2013, 12, 31)}
    with serving.connect(autocommit=True) as conn:
        return sum(len(conn.execute(q.sql, q.params).fetchall()) for q in Q.page_queries(page, f))


@pytest.mark.parametrize("spec", [WEATHER, CARRIER], ids=lambda s: s.name)
def test_added_retyped_and_dropped_columns_are_published(spec, edit_sql, local_lake, serving):
    assert build(spec, local_lake, serving).success
    page = "weather" if spec is WEATHER else "overview"
    assert run_page(serving, page) > 0
    before = columns(serving, spec)
    assert before["flights"] == "bigint"

    # added: a new column, with its values
    edit_sql(spec, "COUNT(*) AS flights,", "COUNT(*) AS flights,\n    COUNT(*) * 2 AS flights_x2,")
    result = build(spec, local_lake, serving)
    meta = rds_meta(result, spec)
    assert meta["columns_added"] == "flights_x2" and meta["columns_dropped"] == "none"
    assert columns(serving, spec)["flights_x2"] == "bigint"
    with serving.connect(autocommit=True) as conn:
        bad = conn.execute(
            f"SELECT count(*) FROM gold.{spec.name} WHERE flights_x2 IS DISTINCT FROM 2 * flights"
        ).fetchone()[0]
    assert bad == 0
    assert all(checks(result).values()), checks(result)
    assert in_sync(local_lake, serving, spec)
    assert run_page(serving, page) > 0

    # retyped: flights becomes a double
    edit_sql(spec, "COUNT(*) AS flights,", "CAST(COUNT(*) AS DOUBLE) AS flights,")
    result = build(spec, local_lake, serving)
    assert rds_meta(result, spec)["columns_retyped"] == "flights: bigint -> double precision"
    assert columns(serving, spec)["flights"] == "double precision"
    assert all(checks(result).values()), checks(result)
    assert run_page(serving, page) > 0

    # dropped and renamed: flights_x2 goes, twice_flights comes
    edit_sql(spec, "COUNT(*) * 2 AS flights_x2,", "COUNT(*) * 2 AS twice_flights,")
    result = build(spec, local_lake, serving)
    meta = rds_meta(result, spec)
    assert (meta["columns_added"], meta["columns_dropped"]) == ("twice_flights", "flights_x2")
    after = columns(serving, spec)
    assert "flights_x2" not in after and after["twice_flights"] == "bigint"
    assert set(after) == set(before) | {"twice_flights"}
    assert all(checks(result).values()), checks(result)
    assert in_sync(local_lake, serving, spec)
    assert run_page(serving, page) > 0
    with serving.connect(autocommit=True) as conn:  # no staging left anywhere
        assert (
            conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'gold_stage'"
            ).fetchone()[0]
            == 0
        )


def test_reordered_columns_load_by_name(edit_sql, local_lake, serving):
    spec = WEATHER
    assert build(spec, local_lake, serving).success
    edit_sql(
        spec,
        "    COUNT(*) AS flights,\n    COUNT_IF(f.dep_time IS NULL) AS cancelled,",
        "    COUNT_IF(f.dep_time IS NULL) AS cancelled,\n    COUNT(*) AS flights,",
    )
    result = build(spec, local_lake, serving)
    assert all(checks(result).values()), checks(result)
    assert rds_meta(result, spec)["action"] == "loaded"
    assert in_sync(local_lake, serving, spec)


def test_dropped_column_breaks_the_dashboard_query_that_reads_it(edit_sql, local_lake, serving):
    """A page whose column is gone fails in PostgreSQL naming the column; the copy is whole."""
    spec = CARRIER
    assert build(spec, local_lake, serving).success
    edit_sql(spec, "    MAX(a.name) AS carrier_name,\n", "")
    assert build(spec, local_lake, serving).success
    assert "carrier_name" not in columns(serving, spec)
    with pytest.raises(Exception, match="carrier_name"), serving.connect(autocommit=True) as conn:
        for q in Q.FILTER_QUERIES:
            conn.execute(q().sql, q().params).fetchall()


@pytest.mark.parametrize("spec", [WEATHER, CARRIER], ids=lambda s: s.name)
def test_fail_policy_refuses_and_keeps_the_old_copy(spec, edit_sql, local_lake, serving):
    strict = replace(spec, on_schema_change="fail")
    assert build(strict, local_lake, serving).success
    with serving.connect(autocommit=True) as conn:
        before = conn.execute(f"SELECT count(*), sum(flights) FROM gold.{spec.name}").fetchone()
    shape = columns(serving, spec)

    edit_sql(spec, "COUNT(*) AS flights,", "COUNT(*) AS flights,\n    COUNT(*) * 2 AS flights_x2,")
    result = build(strict, local_lake, serving, raise_on_error=False)

    assert not result.success
    evaluation = next(
        c for c in result.get_asset_check_evaluations() if c.check_name == "in_sync_with_lake"
    )
    refused = evaluation.metadata["refused"].value
    assert not evaluation.passed
    assert "flights_x2" in refused and "on_schema_change='fail'" in refused
    assert columns(serving, spec) == shape
    with serving.connect(autocommit=True) as conn:
        assert (
            conn.execute(f"SELECT count(*), sum(flights) FROM gold.{spec.name}").fetchone()
            == before
        )
        status = table_status(spec, GoldLake(local_lake), conn)
    assert not status.in_sync and status.reason.startswith(refused)  # the same reason
    # no sync comes by itself: trouble now (ERROR, alerted), whatever the lag tolerance
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR and status.severity == "error"
    assert "until the lake changes" in status.reason  # and until when: no promise that
    # a forced sync helps, since it does not here

    # a forced sync does not override the policy either: the spec decides
    from platform_assets.serving.protocol import sync_table
    from resources.sql_engine import DuckDBEngine

    with pytest.raises(SyncRefused, match="flights_x2"):
        sync_table(strict, GoldLake(local_lake), DuckDBEngine(lake=local_lake), serving, log=print)


def test_spec_index_on_a_column_the_sql_does_not_select_fails_at_definition_time():
    bad = replace(WEATHER, indexes=(("origin", "wind_gust"),))
    with pytest.raises(ValueError, match=r"airport_daily_weather.*wind_gust"):
        bad.validate()
    with pytest.raises(ValueError, match="segment column"):
        replace(WEATHER, primary_key=("origin",)).validate()
