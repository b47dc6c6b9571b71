"""The Streamlit dashboard, page by page, on a real PostgreSQL holding synced Gold tables.

Each page runs in `streamlit.testing.v1.AppTest` as the read-only role (`DASHBOARD_RDS_URL`);
what it shows is compared with numbers computed independently: by direct SQL on the serving copy
and by DuckDB over the lake's Silver flights. The badge must name the ledger's lake version (the
lake's current state) and turn amber/red when the ledger says the data is old.
"""

from __future__ import annotations

import socket
from datetime import date, timedelta

import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from platform_assets.lake.tables import GoldLake
from platform_assets.serving import ledger
from resources.sql_engine import DuckDBEngine
from tests.support.app_sessions import APP
from tests.support.dashboard import assert_badge, gold_database, sql, texts

MATERIALIZE = "uv run dg launch --assets '*'"


@pytest.fixture(scope="module")
def gold(pg_url, silver_lake_dir, tmp_path_factory):
    return gold_database(pg_url, silver_lake_dir, tmp_path_factory.mktemp("dash"))


@pytest.fixture
def app(gold, monkeypatch):
    serving, _ = gold
    monkeypatch.setenv("DASHBOARD_RDS_URL", serving.dashboard_url())
    st.cache_data.clear()
    st.cache_resource.clear()
    return AppTest.from_file(APP, default_timeout=60)


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def sidebar_labels(at: AppTest) -> list[str]:
    return [w.label for w in (*at.sidebar.selectbox, *at.sidebar.date_input)]


def flights_shown(at: AppTest) -> str:
    return {m.label: m.value for m in at.metric}["Flights"]


def test_overview_kpis_equal_direct_sql_and_the_lake(app, gold):
    serving, lake = gold
    at = app.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert sidebar_labels(at) == ["Carrier", "Airport", "Date range"]
    metrics = {m.label: m.value for m in at.metric}

    # Default filters: UA, all airports, the last 365 days of data (here all of 2013).
    (flights, cancelled, on_time, departed) = sql(
        serving,
        "SELECT SUM(flights), SUM(cancelled), SUM(on_time_arrivals), SUM(departed) "
        "FROM gold.carrier_daily_performance WHERE carrier = 'UA' "
        "AND flight_date BETWEEN '2013-01-01' AND '2013-12-31'",
    )[0]
    assert metrics["Flights"] == f"{flights:,}"
    assert metrics["Cancellations"] == f"{int(cancelled):,}"
    assert metrics["On-time rate"] == f"{100 * on_time / departed:.1f} %"

    # The same numbers straight from the lake's Silver flights (a different engine and table).
    truth = (
        DuckDBEngine(lake=lake)
        .query(
            "SELECT COUNT(*) AS n, COUNT_IF(dep_time IS NULL) AS c, "
            "AVG(arr_delay) AS arr, AVG(dep_delay) AS dep "
            "FROM silver.flights WHERE carrier = 'UA'"
        )
        .to_pylist()[0]
    )
    assert metrics["Flights"] == f"{truth['n']:,}"
    assert metrics["Cancellations"] == f"{truth['c']:,}"
    assert abs(float(metrics["Avg arrival delay"].split()[0]) - truth["arr"]) < 0.15
    assert abs(float(metrics["Avg departure delay"].split()[0]) - truth["dep"]) < 0.15

    assert len(charts(at)) == 2  # daily delays + flights/cancellations (two axes, a legend)
    assert_badge(at, serving, lake, "carrier_daily_performance")

    # Another carrier and a shorter period: the tiles follow the filters.
    at.sidebar.selectbox(key="carrier").set_value("AA")
    at.sidebar.date_input(key="dates").set_value((date(2013, 6, 1), date(2013, 6, 30)))
    at.run()
    aa_june = sql(
        serving,
        "SELECT SUM(flights) FROM gold.carrier_daily_performance WHERE carrier = 'AA' "
        "AND flight_date BETWEEN '2013-06-01' AND '2013-06-30'",
    )[0][0]
    assert flights_shown(at) == f"{aa_june:,}"
    assert "Overview · AA" in at.header[0].value

    # An airport: AA's departures from LGA in June, from the monthly route table.
    at.sidebar.selectbox(key="airport").set_value("LGA").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    aa_lga, cancelled = sql(
        serving,
        "SELECT SUM(flights), SUM(cancelled) FROM gold.route_monthly_performance "
        "WHERE carrier = 'AA' AND origin = 'LGA' AND month = '2013-06-01'",
    )[0]
    assert 0 < aa_lga < aa_june
    assert flights_shown(at) == f"{aa_lga:,}"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cancellations"] == f"{cancelled:,}"
    assert "On-time rate" not in metrics  # the route table has no on-time count: not shown
    assert "Overview · AA · American Airlines Inc. · LGA" in at.header[0].value
    assert_badge(at, serving, lake, "route_monthly_performance")

    # All carriers at LGA.
    at.sidebar.selectbox(key="carrier").set_value("*").run()
    (all_lga,) = sql(
        serving,
        "SELECT SUM(flights) FROM gold.route_monthly_performance "
        "WHERE origin = 'LGA' AND month = '2013-06-01'",
    )[0]
    assert flights_shown(at) == f"{all_lga:,}"


def test_routes_page_applies_the_sidebar_filters(app, gold):
    serving, lake = gold
    at = app.run()
    at.sidebar.radio(key="page").set_value("routes").run()
    assert sidebar_labels(at) == ["Carrier", "Airport", "Date range"]
    assert [w.label for w in at.main.selectbox] == []  # no page-own carrier/origin/month
    at.sidebar.selectbox(key="carrier").set_value("*")
    at.sidebar.date_input(key="dates").set_value((date(2013, 7, 1), date(2013, 7, 31)))
    at.number_input(key="minf").set_value(20)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    expected = sql(
        serving,
        "SELECT origin, dest, carrier, avg_arr_delay_min FROM gold.route_monthly_performance "
        "WHERE month = '2013-07-01' AND flights >= 20 AND avg_arr_delay_min IS NOT NULL "
        "ORDER BY avg_arr_delay_min DESC, origin, dest, carrier LIMIT 20",
    )
    table = at.dataframe[0].value
    assert list(table["route"]) == [f"{o}→{d} ({c})" for o, d, c, _ in expected]
    assert list(table["avg_arr_delay_min"]) == [round(a, 1) for *_, a in expected]
    assert (table["flights"] >= 20).all()
    assert len(charts(at)) == 1
    assert_badge(at, serving, lake, "route_monthly_performance")

    # The sidebar's carrier and airport narrow the list.
    at.sidebar.selectbox(key="airport").set_value("EWR")
    at.sidebar.selectbox(key="carrier").set_value("UA")
    at.run()
    table = at.dataframe[0].value
    assert len(table) > 0
    assert all(r.startswith("EWR→") and r.endswith("(UA)") for r in table["route"])

    # A longer period: flights of each route add up over its months.
    at.sidebar.date_input(key="dates").set_value((date(2013, 6, 15), date(2013, 8, 10)))
    at.run()
    summer = dict(
        sql(
            serving,
            "SELECT dest, SUM(flights) FROM gold.route_monthly_performance WHERE origin = 'EWR' "
            "AND carrier = 'UA' AND month BETWEEN '2013-06-01' AND '2013-08-01' GROUP BY dest",
        )
    )
    table = at.dataframe[0].value
    for route, flights in zip(table["route"], table["flights"], strict=True):
        assert flights == summer[route.split("→")[1].split(" ")[0]]


def test_weather_page_and_badge_colours(app, gold):
    serving, lake = gold
    at = app.run()
    at.sidebar.radio(key="page").set_value("weather").run()
    assert sidebar_labels(at) == ["Airport", "Date range"]  # no carrier: the data has none
    at.sidebar.selectbox(key="airport").set_value("LGA").run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    days, wet_delay = sql(
        serving,
        "SELECT COUNT(*), AVG(avg_dep_delay_min) FILTER (WHERE precip_in > 0) "
        "FROM gold.airport_daily_weather WHERE origin = 'LGA' "
        "AND flight_date BETWEEN '2013-01-01' AND '2013-12-31'",
    )[0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Days"] == f"{days:,}"
    assert metrics["Avg delay, wet days"] == f"{wet_delay:.1f} min"
    assert len(charts(at)) == 3  # two scatter charts and the daily bars + line (a legend)
    assert "Airports & weather · LGA" in at.header[0].value
    assert_badge(at, serving, lake, "airport_daily_weather")

    # All airports: one row per day (averaged over the airports), other delays than LGA's.
    at.sidebar.selectbox(key="airport").set_value("*").run()
    everywhere = {m.label: m.value for m in at.metric}
    assert everywhere["Days"] == "365"
    assert everywhere["Avg delay, wet days"] != metrics["Avg delay, wet days"]
    assert "Airports & weather · All airports" in at.header[0].value

    # The carrier picked on Overview is kept while Weather hides it.
    at.sidebar.radio(key="page").set_value("overview").run()
    at.sidebar.selectbox(key="carrier").set_value("DL").run()
    at.sidebar.radio(key="page").set_value("weather").run()
    at.sidebar.radio(key="page").set_value("overview").run()
    assert at.sidebar.selectbox(key="carrier").value == "DL"

    # The ledger says the version was built 25 h / 27 h ago: amber, then red (spec 24 h / 26 h).
    # The badge reads the ledger on every view: no cache to clear.
    at.sidebar.radio(key="page").set_value("weather").run()
    table = "airport_daily_weather"
    (created,) = sql(
        serving,
        "SELECT lake_created_at FROM platform.sync_ledger WHERE table_name = %s "
        "AND partition_key = ''",
        (table,),
    )[0]
    try:
        for hours, colour in ((25, "AMBER"), (27, "RED")):
            sql(
                serving,
                "UPDATE platform.sync_ledger SET lake_created_at = now() - %s "
                "WHERE table_name = %s AND partition_key = ''",
                (timedelta(hours=hours), table),
            )
            at.run()
            assert_badge(at, serving, lake, table, colour)
    finally:
        sql(
            serving,
            "UPDATE platform.sync_ledger SET lake_created_at = %s WHERE table_name = %s "
            "AND partition_key = ''",
            (created, table),
        )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_database_shows_what_to_do_without_the_password(monkeypatch):
    url = f"postgresql://dashboard_reader:s3cr3t-pw@127.0.0.1:{_closed_port()}/serving"
    monkeypatch.setenv("DASHBOARD_RDS_URL", url)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception  # no stack trace
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.startswith("Database unavailable: the serving database (DASHBOARD_RDS_URL=")
    assert "postgresql://dashboard_reader:***@127.0.0.1:" in message
    assert MATERIALIZE not in message  # a server that is down is not a platform to build
    assert all("s3cr3t-pw" not in t for t in texts(at))
    assert not at.metric and not charts(at)


def test_missing_gold_tables_say_run_materialize(serving, gold, monkeypatch):
    """A database with the ledger bootstrapped but no Gold table synced yet."""
    with serving.connect(autocommit=True) as conn:
        ledger.bootstrap(conn, serving.dashboard_role)
    monkeypatch.setenv("DASHBOARD_RDS_URL", serving.dashboard_url())
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.startswith("The Gold tables are not in the serving database yet")
    assert MATERIALIZE in message


def test_read_only_session_even_for_a_privileged_url(gold, monkeypatch):
    """The app's own connection is read-only whatever role the URL names."""
    serving, _ = gold
    monkeypatch.setenv("DASHBOARD_RDS_URL", serving.conninfo())  # the owner, not the reader
    st.cache_resource.clear()
    from dashboard.data import pool

    with pool(serving.conninfo()).connection() as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE gold.nope (x int)")
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "15s"
    st.cache_resource.clear()


def test_badge_is_red_for_a_copy_damaged_by_hand_until_a_sync_repairs_it(app, gold):
    """The badge applies the in-sync rule's copy side: a month truncated by hand is red at
    once (catalog facts, no scan), and green again after the plain sync that repairs it."""
    from platform_assets.serving.protocol import sync_table
    from platform_assets.specs import GOLD_BY_NAME
    from resources.sql_engine import DuckDBEngine

    serving, lake = gold
    table = "carrier_daily_performance"
    sql(serving, f"TRUNCATE gold.{table}__p201305")
    try:
        at = app.run()
        red = [e.value for e in at.error if f"gold.{table}" in e.value]
        assert red and red[0].startswith("RED · ") and "by hand" in red[0], texts(at)
    finally:
        spec = GOLD_BY_NAME[table]
        result = sync_table(spec, GoldLake(lake), DuckDBEngine(lake=lake), serving, log=print)
    assert result.repaired
    at = app.run()
    assert_badge(at, serving, lake, table)
