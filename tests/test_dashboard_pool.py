"""The dashboard's pool and version-keyed cache on a private PostgreSQL that tests may stop.

The server runs from its own folder, started and stopped by `resources.embedded_pg` in
subprocesses (as `goldctl stop-db` does), so stopping it disturbs no other test. Gold is built
and synced into it by the real assets; the lake is edited "outside the platform" and re-synced
by the real protocol to make a new version between two page views.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import streamlit as st
from psycopg_pool import PoolTimeout
from streamlit.testing.v1 import AppTest

from dashboard import data
from dashboard import queries as Q
from platform_assets.lake.tables import GoldLake
from platform_assets.serving.protocol import sync_table
from platform_assets.specs import GOLD_BY_NAME
from resources.sql_engine import DuckDBEngine
from tests.support.app_sessions import APP
from tests.support.dashboard import assert_badge, gold_database
from tests.support.pg_server import embedded

ROOT = Path(__file__).resolve().parent.parent
WEATHER = GOLD_BY_NAME["airport_daily_weather"]


@pytest.fixture(scope="module")
def private(silver_lake_dir, tmp_path_factory):
    """(pgdata, server URL, serving, lake): Gold synced into a server of this module's own."""
    root = tmp_path_factory.mktemp("dashpool")
    pgdata = root / "pg"
    url = embedded("url", pgdata)
    try:
        serving, lake = gold_database(url, silver_lake_dir, root)
        yield pgdata, url, serving, lake
    finally:
        st.cache_resource.clear()  # close the pools before the server goes
        embedded("stop", pgdata)


@pytest.fixture
def app(private, monkeypatch):
    _, _, serving, _ = private
    monkeypatch.setenv("DASHBOARD_RDS_URL", serving.dashboard_url())
    st.cache_data.clear()
    st.cache_resource.clear()
    yield AppTest.from_file(APP, default_timeout=60)
    st.cache_resource.clear()


def airports_offered(at: AppTest) -> list[str]:
    return list(at.sidebar.selectbox(key="airport").options)


def test_a_sync_between_two_views_shows_on_the_next_view(app, private):
    _, _, serving, lake = private
    at = app.run()
    at.sidebar.radio(key="page").set_value("weather").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert_badge(at, serving, lake, WEATHER.name)
    assert "Z00" not in airports_offered(at)

    # Outside the platform: one more file in the current lake version, three days of JFK
    # copied to a new airport.
    state = GoldLake(lake).current_state(WEATHER.name)
    table = pa.concat_tables(
        pq.read_table(lake.filesystem.open_input_file(lake.path(k))) for k in state.parquet_keys
    )
    days = table.filter(pc.equal(table["origin"], "JFK")).slice(0, 3)
    days = days.set_column(days.schema.get_field_index("origin"), "origin", pa.array(["Z00"] * 3))
    extra = lake.path(f"{state.manifest.location}/z00.parquet")
    with lake.filesystem.open_output_stream(extra) as out:
        pq.write_table(days, out)
    result = sync_table(
        WEATHER, GoldLake(lake), DuckDBEngine(lake=lake), serving, log=lambda _: None
    )
    assert result.action == "loaded"

    # The next view, same session, nothing cleared: the badge names the new version and the
    # data is that version's (the new airport is offered and has its three days).
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert_badge(at, serving, lake, WEATHER.name)
    assert GoldLake(lake).current_state(WEATHER.name).state_id != state.state_id
    assert "Z00" in airports_offered(at)
    at.sidebar.selectbox(key="airport").set_value("Z00").run()
    assert {m.label: m.value for m in at.metric}["Days"] == "3"


def test_the_pool_serves_concurrent_sessions(private, monkeypatch):
    """POOL_MAX sessions hold a connection each at the same time; one more waits for one."""
    _, _, serving, _ = private
    monkeypatch.setenv("DASHBOARD_RDS_URL", serving.dashboard_url())
    st.cache_resource.clear()
    pool = data.pool(serving.dashboard_url())
    together = threading.Barrier(data.POOL_MAX + 1)
    release = threading.Event()

    def session() -> int:
        with pool.connection() as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            together.wait(timeout=60)
            release.wait(timeout=60)
            return pid

    with ThreadPoolExecutor(data.POOL_MAX) as sessions:
        pids = [sessions.submit(session) for _ in range(data.POOL_MAX)]
        together.wait(timeout=60)  # every session is inside its query at once
        with pytest.raises(PoolTimeout):
            pool.getconn(timeout=0.5)  # the pool is full: no fifth connection
        release.set()
        assert len({p.result() for p in pids}) == data.POOL_MAX  # one connection each

    # Concurrent cached reads of different filters all answer, through the same pool.
    ledger = data.ledger()
    first, last = date_range(serving)

    def view(origin: str | None):
        return data.load([Q.airport_weather(origin, first, last)], ledger)[0][0]

    with ThreadPoolExecutor(8) as views:
        frames = list(views.map(view, [None, "EWR", "JFK", "LGA"] * 2))
    assert all(len(f) > 0 for f in frames)
    st.cache_resource.clear()


def date_range(serving):
    with serving.connect(autocommit=True) as conn:
        return conn.execute(
            "SELECT MIN(flight_date), MAX(flight_date) FROM gold.airport_daily_weather"
        ).fetchone()


def test_database_down_then_back_without_a_restart(app, private):
    pgdata, url, serving, lake = private
    at = app.run()
    assert not at.error and at.metric, [e.value for e in at.error]

    embedded("stop", pgdata)
    at.run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and not at.metric
    message = at.error[0].value
    assert message.startswith("Database unavailable: the serving database (DASHBOARD_RDS_URL=")

    assert embedded("url", pgdata) == url  # same socket: the app's URL is valid again
    at.run()  # the same app process and pool: stale connections are replaced
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.metric
    assert_badge(at, serving, lake, "carrier_daily_performance")
