"""Every dashboard query is answered with index scans on the Gold tables.

The platform is built at `PLATFORM_SCALE_YEARS=3` (three synthetic years of flights: 3x the rows
of nycflights13, 36 monthly partitions) by the real assets, synced into PostgreSQL by the real
protocol (which builds the spec's indexes and ANALYZEs), and each query of `dashboard/queries.py`
is EXPLAINed as the dashboard role with the planner's default settings, for the filters the app
offers: each must read its Gold relations by index (`dashboard/plans.py` says exactly how).
"""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from dashboard import queries as Q
from dashboard.plans import gold_scans
from platform_assets.specs import GOLD_TABLES
from tests.conftest import materialize, platform_resources

SCALE_YEARS = 3


def dashboard_queries(first: date, last: date) -> list[Q.Query]:
    """Every page's queries for each carrier/airport choice (one, or all) over three periods."""
    year_ago = date(last.year - 1, last.month, last.day + (last.month == 2 and last.day == 29))
    mid = first.year + 1
    out = [*(make() for make in Q.FILTER_QUERIES), Q.ledger_rows(Q.ALL_TABLES)]
    for begin, end in (
        (max(first, year_ago), last),  # the app's default: the last 365 days
        (date(mid, 3, 1), date(mid, 3, 31)),  # one month
        (date(mid, 1, 10), date(mid, 6, 20)),  # half a year, not on month boundaries
    ):
        for carrier, origin in (("UA", None), ("AA", "LGA"), (None, "EWR"), (None, None)):
            f = {"carrier": carrier, "origin": origin, "start": begin, "end": end}
            for page in Q.PAGES:
                out += Q.page_queries(page, {**f, "min_flights": 20})
    return out


@pytest.fixture(scope="module")
def scaled(pg_url, tmp_path_factory):
    """A fresh database with the whole platform materialized at SCALE_YEARS."""
    from resources.serving_db import ServingDatabase
    from resources.storage import LakeStorage

    name = "dash_explain"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    serving = ServingDatabase(url=pg_url.replace("/postgres?", f"/{name}?"))
    lake = LakeStorage(url=str(tmp_path_factory.mktemp("explain") / "lake"))
    result = materialize("*", platform_resources(lake, serving, scale_years=SCALE_YEARS))
    assert result.success
    yield serving
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_every_dashboard_query_uses_an_index(scaled):
    with psycopg.connect(scaled.dashboard_url(), autocommit=True) as conn:
        counts = {
            s.name: conn.execute(f"SELECT count(*) FROM gold.{s.name}").fetchone()[0]
            for s in GOLD_TABLES
        }
        # nycflights13 x3: 5,432 / 3,869 / 1,095 rows a year.
        assert counts["carrier_daily_performance"] >= SCALE_YEARS * 5000, counts
        assert counts["route_monthly_performance"] >= SCALE_YEARS * 3500, counts
        assert counts["airport_daily_weather"] >= SCALE_YEARS * 1000, counts
        first, last = conn.execute(Q.date_bounds().sql).fetchone()
        assert (last - first).days > 365 * (SCALE_YEARS - 1)

        checked, failures = 0, []
        for query in dashboard_queries(first, last):
            gold, bad = gold_scans(conn, query)
            if query.gold:
                assert gold, f"{query.name} reads no Gold relation?"
            if bad:
                failures.append((query.name, query.params, bad))
            checked += 1
        assert not failures, failures
        assert checked >= 20
