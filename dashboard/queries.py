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

from psycopg import sql as pgsql

from platform_assets.identifiers import trusted_sql
from platform_assets.serving.names import PLATFORM_SCHEMA, SCHEMA

CARRIER_DAILY = f"{SCHEMA}.carrier_daily_performance"
ROUTE_MONTHLY = f"{SCHEMA}.route_monthly_performance"
AIRPORT_WEATHER = f"{SCHEMA}.airport_daily_weather"

PAGES = ("overview", "routes", "weather")
# Every Gold table the dashboard reads: their ledger rows are read first on every page view.
ALL_TABLES = tuple(sorted(t.split(".")[1] for t in (CARRIER_DAILY, ROUTE_MONTHLY, AIRPORT_WEATHER)))

_PARAM = re.compile(r"%\((\w+)\)s")
_GOLD = re.compile(r"\bgold\.(\w+)")


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
    def tables(self) -> tuple[str, ...]:
        """The Gold tables the statement reads (whose lake versions key its cached rows)."""
        return tuple(sorted(set(_GOLD.findall(self.sql))))

    def statement(self) -> pgsql.SQL:
        """The SQL for psycopg: see `statement`."""
        return statement(self.sql)

    @property
    def key(self) -> tuple:
        """Hashable identity (cache key)."""
        return (self.name, self.sql, tuple(sorted(self.params.items())))


def statement(text: str) -> pgsql.SQL:
    """A statement of this module (or a cache key's copy of one) for psycopg. Its text is built
    only from the table and column names written in this module; every value a user picks
    travels as a parameter, never in the text, so the text is trusted as it stands."""
    return trusted_sql(text)


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


def _where(conditions: list[str], params: dict, **optional: object) -> str:
    """The conditions and `column = %(column)s` for each optional filter set (None: all)."""
    for column, value in optional.items():
        if value is not None:
            conditions.append(f"{column} = %({column})s")
            params[column] = value
    return " AND ".join(conditions)


def first_of_month(day: date) -> date:
    return date(day.year, day.month, 1)


def daily_performance(carrier: str | None, start: date, end: date) -> Query:
    """One row per day of one carrier (or all): volumes and the sums the KPI tiles and the
    trend chart are computed from (`dashboard/metrics.py`), so the page needs one query.

    A delay average of several rows is weighted by departed flights: `*_delay_sum` is the
    weighted sum, `*_delay_n` the weight of the rows that have an average.
    """
    params: dict = {"start": start, "end": end}
    where = _where(["flight_date BETWEEN %(start)s AND %(end)s"], params, carrier=carrier)
    sql = f"""
SELECT
    flight_date,
    CAST(SUM(flights) AS BIGINT) AS flights,
    CAST(SUM(cancelled) AS BIGINT) AS cancelled,
    CAST(SUM(departed) AS BIGINT) AS departed,
    CAST(SUM(on_time_arrivals) AS BIGINT) AS on_time_arrivals,
    SUM(avg_dep_delay_min * departed) AS dep_delay_sum,
    CAST(SUM(CASE WHEN avg_dep_delay_min IS NOT NULL THEN departed END) AS BIGINT) AS dep_delay_n,
    SUM(avg_arr_delay_min * departed) AS arr_delay_sum,
    CAST(SUM(CASE WHEN avg_arr_delay_min IS NOT NULL THEN departed END) AS BIGINT) AS arr_delay_n
FROM {CARRIER_DAILY}
WHERE {where}
GROUP BY flight_date
ORDER BY flight_date"""
    return Query("daily_performance", sql, params)


def airport_months(carrier: str | None, origin: str, start: date, end: date) -> Query:
    """One row per month of departures from one airport (one carrier or all): the Overview for
    an airport. Only the monthly route table has both carrier and airport, so the period is
    the whole months the dates touch, and there is no on-time count or departure delay."""
    params: dict = {"first_month": first_of_month(start), "end": end}
    where = _where(
        ["month BETWEEN %(first_month)s AND %(end)s"], params, carrier=carrier, origin=origin
    )
    sql = f"""
SELECT
    month,
    CAST(SUM(flights) AS BIGINT) AS flights,
    CAST(SUM(cancelled) AS BIGINT) AS cancelled,
    CAST(SUM(flights - cancelled) AS BIGINT) AS departed,
    SUM(avg_arr_delay_min * (flights - cancelled)) AS arr_delay_sum,
    CAST(SUM(CASE WHEN avg_arr_delay_min IS NOT NULL THEN flights - cancelled END) AS BIGINT)
        AS arr_delay_n
FROM {ROUTE_MONTHLY}
WHERE {where}
GROUP BY month
ORDER BY month"""
    return Query("airport_months", sql, params)


# ---- Routes --------------------------------------------------------------------------------


def worst_routes(
    start: date,
    end: date,
    carrier: str | None = None,
    origin: str | None = None,
    min_flights: int = 1,
    limit: int = 20,
) -> Query:
    """Routes by average arrival delay over the whole months the dates touch, worst first.

    A route's delay is its monthly averages weighted by departed flights; `min_flights` counts
    the route's flights over the period."""
    params: dict = {
        "first_month": first_of_month(start),
        "end": end,
        "min_flights": int(min_flights),
        "limit": int(limit),
    }
    where = _where(
        ["month BETWEEN %(first_month)s AND %(end)s"], params, carrier=carrier, origin=origin
    )
    weight = "SUM(CASE WHEN avg_arr_delay_min IS NOT NULL THEN flights - cancelled END)"
    sql = f"""
SELECT origin, dest, carrier, flights, cancelled, avg_arr_delay_min, distance_miles
FROM (
    SELECT
        origin,
        dest,
        carrier,
        CAST(SUM(flights) AS BIGINT) AS flights,
        CAST(SUM(cancelled) AS BIGINT) AS cancelled,
        SUM(avg_arr_delay_min * (flights - cancelled)) / {weight} AS avg_arr_delay_min,
        SUM(distance_miles * flights) / SUM(flights) AS distance_miles
    FROM {ROUTE_MONTHLY}
    WHERE {where}
    GROUP BY origin, dest, carrier
    HAVING SUM(flights) >= %(min_flights)s AND {weight} > 0
) AS routes
ORDER BY avg_arr_delay_min DESC, origin, dest, carrier
LIMIT %(limit)s"""
    return Query("worst_routes", sql, params)


# ---- Airports & weather --------------------------------------------------------------------


def airport_weather(origin: str | None, start: date, end: date) -> Query:
    """One row per day at one airport (or all, averaged): departures and delay next to that
    day's weather. Several airports' delays are weighted by departed flights."""
    params: dict = {"start": start, "end": end}
    where = _where(["flight_date BETWEEN %(start)s AND %(end)s"], params, origin=origin)
    sql = f"""
SELECT
    flight_date,
    CAST(SUM(flights) AS BIGINT) AS flights,
    CAST(SUM(cancelled) AS BIGINT) AS cancelled,
    SUM(avg_dep_delay_min * (flights - cancelled)) / NULLIF(SUM(CASE WHEN avg_dep_delay_min
        IS NOT NULL THEN flights - cancelled END), 0) AS avg_dep_delay_min,
    AVG(precip_in) AS precip_in,
    AVG(visibility_mi) AS visibility_mi,
    AVG(wind_speed_mph) AS wind_speed_mph
FROM {AIRPORT_WEATHER}
WHERE {where}
GROUP BY flight_date
ORDER BY flight_date"""
    return Query("airport_weather", sql, params)


# ---- freshness -----------------------------------------------------------------------------


def ledger_rows(tables: tuple[str, ...]) -> Query:
    """The ledger's whole-table rows for the page's Gold tables (what the badge reports)."""
    names = ", ".join(f"%(t{i})s" for i in range(len(tables)))
    sql = f"""
SELECT table_name, lake_version, row_count, lake_created_at, loaded_at
FROM {PLATFORM_SCHEMA}.sync_ledger
WHERE partition_key = '' AND table_name IN ({names})
ORDER BY table_name"""
    return Query("ledger_rows", sql, {f"t{i}": t for i, t in enumerate(tables)}, gold=False)


def page_queries(page: str, f: dict) -> list[Query]:
    """The Gold queries one page view runs, given its filters (what the app fetches per view,
    and what the benchmark times); the ledger row is read first and apart (`ledger_rows`).

    `f` holds carrier and origin (None: all), start, end and optionally min_flights. The
    filter lists (`FILTER_QUERIES`) are fetched once per lake version, so they are not here.
    """
    if page == "overview":
        if f["origin"] is None:
            return [daily_performance(f["carrier"], f["start"], f["end"])]
        return [airport_months(f["carrier"], f["origin"], f["start"], f["end"])]
    if page == "routes":
        return [
            worst_routes(f["start"], f["end"], f["carrier"], f["origin"], f.get("min_flights", 1))
        ]
    if page == "weather":
        return [airport_weather(f["origin"], f["start"], f["end"])]
    raise ValueError(f"unknown page {page!r}")


FILTER_QUERIES = (carriers, airports, date_bounds)
