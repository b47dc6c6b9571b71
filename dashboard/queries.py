"""Every SQL statement the dashboard runs, as named, parameterised functions.

The app, the tests and `benchmarks/dashboard_latency.py` all call these, so what is measured and
tested is exactly what a page runs. Each function returns a `Query` (SQL with `%(name)s`
placeholders for psycopg, plus its parameters); `Query.duckdb()` gives the same statement with
DuckDB's `$name` placeholders, so it also runs on the lake engine over the Gold Parquet
(`resources/sql_engine.DuckDBEngine` resolves `gold.<table>` to the manifest's current files).

The SQL is written in the common subset of PostgreSQL and DuckDB (no `::`, no `FILTER`, no
PostgreSQL-only functions). Every filter is on the leading columns of an index declared in
`platform_assets/specs.py` (`GoldTableSpec.indexes` or the primary key), so PostgreSQL answers
each query with an index scan (`tests/test_dashboard_explain.py` checks the plans).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

CARRIER_DAILY = "gold.carrier_daily_performance"
ROUTE_MONTHLY = "gold.route_monthly_performance"
AIRPORT_WEATHER = "gold.airport_daily_weather"

# Which Gold table each page reads (its freshness badge reports these).
PAGE_TABLES = {
    "overview": ("carrier_daily_performance",),
    "routes": ("route_monthly_performance",),
    "weather": ("airport_daily_weather",),
}

_PARAM = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    params: dict = field(default_factory=dict)
    gold: bool = True  # reads a Gold table (False: the ledger, a one-page platform table)

    def duckdb(self) -> tuple[str, dict]:
        """The same statement for DuckDB: `$name` placeholders (only the ones the SQL uses)."""
        used = set(_PARAM.findall(self.sql))
        sql = _PARAM.sub(lambda m: "$" + m.group(1), self.sql)
        return sql, {k: v for k, v in self.params.items() if k in used}

    @property
    def key(self) -> tuple:
        """Hashable identity (cache key)."""
        return (self.name, self.sql, tuple(sorted(self.params.items())))


# ---- filters (the sidebar's choices) ----------------------------------------------------------


def _distinct_cte(alias: str, table: str, column: str) -> str:
    """`WITH RECURSIVE <alias>(<column>)`: the column's distinct values by a loose index scan
    (one index probe per value, where SELECT DISTINCT reads every row)."""
    return f"""
WITH RECURSIVE {alias}({column}) AS (
    SELECT MIN({column}) FROM {table}
    UNION ALL
    SELECT (SELECT MIN(t.{column}) FROM {table} AS t WHERE t.{column} > {alias}.{column})
    FROM {alias} WHERE {alias}.{column} IS NOT NULL
)"""


def carriers() -> Query:
    """Distinct carriers with their names: a loose index scan over (carrier, flight_date)."""
    sql = f"""{_distinct_cte("c", CARRIER_DAILY, "carrier")}
SELECT c.carrier,
       (SELECT MAX(t.carrier_name) FROM {CARRIER_DAILY} AS t
         WHERE t.carrier = c.carrier AND t.flight_date = (
             SELECT MAX(u.flight_date) FROM {CARRIER_DAILY} AS u WHERE u.carrier = c.carrier)
       ) AS carrier_name
FROM c
WHERE c.carrier IS NOT NULL
ORDER BY c.carrier"""
    return Query("carriers", sql)


def airports() -> Query:
    """Distinct origin airports: a loose index scan over (origin, flight_date)."""
    sql = f"""{_distinct_cte("a", AIRPORT_WEATHER, "origin")}
SELECT origin FROM a WHERE origin IS NOT NULL ORDER BY origin"""
    return Query("airports", sql)


def _bounds(name: str, table: str, column: str, label: str) -> Query:
    """First and last value of a primary key's leading column (two index probes)."""
    sql = f"""
SELECT (SELECT MIN({column}) FROM {table}) AS first_{label},
       (SELECT MAX({column}) FROM {table}) AS last_{label}"""
    return Query(name, sql)


def date_bounds() -> Query:
    """First and last flight date."""
    return _bounds("date_bounds", CARRIER_DAILY, "flight_date", "date")


# ---- Overview ------------------------------------------------------------------------------


def carrier_kpis(carrier: str, start: date, end: date) -> Query:
    """KPI tiles for one carrier and period.

    on_time_rate = on-time arrivals / departed flights; the average delays are the daily
    averages weighted by departed flights (cancelled flights have no delay).
    """
    sql = f"""
SELECT
    COALESCE(SUM(flights), 0) AS flights,
    COALESCE(SUM(cancelled), 0) AS cancelled,
    COALESCE(SUM(departed), 0) AS departed,
    SUM(on_time_arrivals) / NULLIF(SUM(departed), 0) AS on_time_rate,
    SUM(avg_dep_delay_min * departed) / NULLIF(SUM(CASE WHEN avg_dep_delay_min IS NOT NULL
        THEN departed END), 0) AS avg_dep_delay_min,
    SUM(avg_arr_delay_min * departed) / NULLIF(SUM(CASE WHEN avg_arr_delay_min IS NOT NULL
        THEN departed END), 0) AS avg_arr_delay_min
FROM {CARRIER_DAILY}
WHERE carrier = %(carrier)s AND flight_date BETWEEN %(start)s AND %(end)s"""
    return Query("carrier_kpis", sql, {"carrier": carrier, "start": start, "end": end})


def carrier_daily_trend(carrier: str, start: date, end: date) -> Query:
    """One row per day for the trend chart."""
    sql = f"""
SELECT
    flight_date,
    flights,
    cancelled,
    on_time_arrivals / NULLIF(departed, 0) AS on_time_rate,
    avg_dep_delay_min,
    avg_arr_delay_min
FROM {CARRIER_DAILY}
WHERE carrier = %(carrier)s AND flight_date BETWEEN %(start)s AND %(end)s
ORDER BY flight_date"""
    return Query("carrier_daily_trend", sql, {"carrier": carrier, "start": start, "end": end})


# ---- Routes --------------------------------------------------------------------------------


def worst_routes(
    month: date,
    carrier: str | None = None,
    origin: str | None = None,
    min_flights: int = 1,
    limit: int = 20,
) -> Query:
    """Routes of one month by average arrival delay, worst first (index (month, avg_arr_delay))."""
    filters = ["month = %(month)s", "flights >= %(min_flights)s", "avg_arr_delay_min IS NOT NULL"]
    params: dict = {"month": month, "min_flights": int(min_flights), "limit": int(limit)}
    if carrier:
        filters.append("carrier = %(carrier)s")
        params["carrier"] = carrier
    if origin:
        filters.append("origin = %(origin)s")
        params["origin"] = origin
    sql = f"""
SELECT
    origin,
    dest,
    carrier,
    flights,
    cancelled,
    avg_arr_delay_min,
    distance_miles
FROM {ROUTE_MONTHLY}
WHERE {" AND ".join(filters)}
ORDER BY avg_arr_delay_min DESC, origin, dest, carrier
LIMIT %(limit)s"""
    return Query("worst_routes", sql, params)


def route_months() -> Query:
    """First and last month of the route table."""
    return _bounds("route_months", ROUTE_MONTHLY, "month", "month")


# ---- Airports & weather --------------------------------------------------------------------


def airport_weather(origin: str, start: date, end: date) -> Query:
    """One row per day at one airport: departures and delay next to that day's weather."""
    sql = f"""
SELECT
    flight_date,
    flights,
    cancelled,
    avg_dep_delay_min,
    precip_in,
    visibility_mi,
    wind_speed_mph
FROM {AIRPORT_WEATHER}
WHERE origin = %(origin)s AND flight_date BETWEEN %(start)s AND %(end)s
ORDER BY flight_date"""
    return Query("airport_weather", sql, {"origin": origin, "start": start, "end": end})


# ---- freshness -----------------------------------------------------------------------------


def ledger_rows(tables: tuple[str, ...]) -> Query:
    """The ledger's whole-table rows for the page's Gold tables (what the badge reports)."""
    names = ", ".join(f"%(t{i})s" for i in range(len(tables)))
    sql = f"""
SELECT table_name, lake_version, row_count, lake_created_at, loaded_at
FROM platform.sync_ledger
WHERE partition_key = '' AND table_name IN ({names})
ORDER BY table_name"""
    return Query("ledger_rows", sql, {f"t{i}": t for i, t in enumerate(tables)}, gold=False)


def page_queries(page: str, f: dict) -> list[Query]:
    """The queries one page view runs, given its filters (what the benchmark times).

    `f` holds carrier, origin, start, end, month, and optionally route_carrier/route_origin/
    min_flights. The filter lists (`FILTER_QUERIES`) are cached longer, so they are not here.
    """
    if page == "overview":
        return [
            carrier_kpis(f["carrier"], f["start"], f["end"]),
            carrier_daily_trend(f["carrier"], f["start"], f["end"]),
            ledger_rows(PAGE_TABLES["overview"]),
        ]
    if page == "routes":
        return [
            worst_routes(
                f["month"],
                f.get("route_carrier"),
                f.get("route_origin"),
                f.get("min_flights", 1),
            ),
            ledger_rows(PAGE_TABLES["routes"]),
        ]
    if page == "weather":
        return [
            airport_weather(f["origin"], f["start"], f["end"]),
            ledger_rows(PAGE_TABLES["weather"]),
        ]
    raise ValueError(f"unknown page {page!r}")


FILTER_QUERIES = (carriers, airports, date_bounds, route_months)
