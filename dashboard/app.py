"""Flight-operations dashboard on the RDS serving copy of the Gold tables (read-only role).

    uv run streamlit run dashboard/app.py

Reads `DASHBOARD_RDS_URL` (the `dashboard_reader` login on RDS) or, when unset, the read-only
role on the embedded PostgreSQL under `.local/` (`uv run dagster asset materialize --select '*'`
builds and syncs it). Every statement is in `dashboard/queries.py`; every page shows the
freshness badge from `platform.sync_ledger` (`dashboard/badge.py`). `?page=routes` or
`?page=weather` in the URL opens a page directly.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import psycopg  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import badge as badges  # noqa: E402
from dashboard import queries as Q  # noqa: E402
from platform_assets.specs import GOLD_BY_NAME  # noqa: E402
from resources.serving_db import libpq_url, redact  # noqa: E402

CACHE_TTL_S = int(os.environ.get("DASHBOARD_CACHE_TTL_S", "120"))
MATERIALIZE = "uv run dagster asset materialize --select '*'"
PAGES = {"overview": "Overview", "routes": "Routes", "weather": "Airports & weather"}


class Unavailable(Exception):
    """The dashboard cannot show data; the message says what to do (never a password)."""


# ---- connection and cached queries ------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def resolve_url() -> tuple[str, str]:
    """(libpq URL, what it came from). The embedded default starts the local server if needed."""
    env = os.environ.get("DASHBOARD_RDS_URL", "").strip()
    if env:
        return libpq_url(env), "DASHBOARD_RDS_URL"
    from platform_assets.settings import open_resources

    with open_resources() as resources:
        return resources["serving"].dashboard_url(), "embedded default"


def _scrub(text: str, url: str) -> str:
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


@st.cache_resource(show_spinner=False, validate=lambda conn: not conn.closed)
def connection(url: str) -> psycopg.Connection:
    """One connection per server, shared by sessions (psycopg serialises its use)."""
    conn = psycopg.connect(
        url, autocommit=True, connect_timeout=5, application_name="gold-dashboard"
    )
    conn.execute("SET default_transaction_read_only = on")
    conn.execute("SET statement_timeout = '15s'")
    return conn


def _run(url: str, sql: str, params: dict) -> pd.DataFrame:
    for attempt in (1, 2):
        conn = connection(url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                columns = [d.name for d in cur.description]
                return pd.DataFrame(cur.fetchall(), columns=columns)
        except psycopg.errors.QueryCanceled:
            raise
        except (psycopg.OperationalError, psycopg.InterfaceError):
            connection.clear()  # a dropped connection (server restart, failover): reconnect once
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def fetch(url: str, name: str, sql: str, params: dict) -> tuple[pd.DataFrame, datetime]:
    """Rows of one query and when they were fetched (cached for CACHE_TTL_S)."""
    return _run(url, sql, params), datetime.now(UTC)


def run(query: Q.Query) -> tuple[pd.DataFrame, datetime]:
    """A dashboard query against the serving copy, with errors turned into what to do."""
    try:
        url, source = resolve_url()
    except Exception as exc:  # the embedded server could not start
        raise Unavailable(
            "Cannot start the embedded serving database (DASHBOARD_RDS_URL is not set): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            f"Run `{MATERIALIZE}` to build it, or set DASHBOARD_RDS_URL to the read-only "
            "dashboard role's URL."
        ) from None
    shown = redact(url)
    try:
        return fetch(url, query.name, query.sql, query.params)
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as exc:
        reason = _scrub(str(exc).strip().splitlines()[0], url)
        raise Unavailable(
            f"The Gold tables are not in the serving database yet ({reason}; {source}: "
            f"{shown}). Build and sync them with `{MATERIALIZE}`, then reload this page."
        ) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        reason = _scrub(str(exc).strip().splitlines()[0], url)
        raise Unavailable(
            f"The dashboard role may not read the Gold tables ({reason}; {source}: {shown}). "
            "Grants are re-applied at every sync: run `uv run goldctl sync --force`."
        ) from None
    except psycopg.errors.QueryCanceled:
        raise Unavailable(
            f"A dashboard query ({query.name}) took longer than the 15 s statement timeout on "
            f"{shown}. Narrow the filters, or check the serving database's load."
        ) from None
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        reason = _scrub(" ".join(lines) or type(exc).__name__, url)
        setting = f"DASHBOARD_RDS_URL={shown}" if source == "DASHBOARD_RDS_URL" else shown
        raise Unavailable(
            f"Cannot reach the serving database ({setting}): {reason}. Check that the server "
            "is up and the URL is right; for the local default, build and sync the Gold tables "
            f"with `{MATERIALIZE}` (it starts the embedded PostgreSQL)."
        ) from None


def rows(query: Q.Query) -> pd.DataFrame:
    return run(query)[0]


# ---- freshness badge --------------------------------------------------------------------------


def freshness_badge(page: str, cached_at: list[datetime], where) -> None:
    """The ledger's view of the page's tables, shown in `where` (a container atop the page)."""
    tables = Q.PAGE_TABLES[page]
    ledger, ledger_at = run(Q.ledger_rows(tables))
    by_table = {r["table_name"]: r for r in ledger.to_dict("records")}
    for table in tables:
        spec = GOLD_BY_NAME[table]
        row = by_table.get(table)
        if row is not None:
            for col in ("lake_created_at", "loaded_at"):
                row[col] = pd.Timestamp(row[col]).to_pydatetime()
        b = badges.make_badge(table, row, spec.freshness_warn, spec.freshness_sla)
        show = {badges.GREEN: where.success, badges.AMBER: where.warning, badges.RED: where.error}
        show[b.colour](b.text, icon=badges.ICONS[b.colour])
    oldest = min([ledger_at, *cached_at])
    where.caption(
        f"View cached at {oldest:%Y-%m-%d %H:%M:%S} UTC (queries are cached for "
        f"{CACHE_TTL_S} s) · serving copy: {redact(resolve_url()[0])}"
    )


# ---- pages ------------------------------------------------------------------------------------


def _fmt_min(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.1f} min"


def overview(f: dict) -> None:
    st.header(f"Overview · {f['carrier_label']}")
    top = st.container()
    st.caption(f"{f['start']:%d %b %Y} – {f['end']:%d %b %Y}")
    kpis, kpi_at = run(Q.carrier_kpis(f["carrier"], f["start"], f["end"]))
    trend, trend_at = run(Q.carrier_daily_trend(f["carrier"], f["start"], f["end"]))
    k = kpis.iloc[0]
    flights, cancelled = int(k["flights"]), int(k["cancelled"])
    cols = st.columns(5)
    cols[0].metric("Flights", f"{flights:,}")
    cols[1].metric(
        "On-time rate",
        "–" if pd.isna(k["on_time_rate"]) else f"{100 * k['on_time_rate']:.1f} %",
        help="Arrivals less than 15 minutes late, of departed flights.",
    )
    cols[2].metric("Avg departure delay", _fmt_min(k["avg_dep_delay_min"]))
    cols[3].metric("Avg arrival delay", _fmt_min(k["avg_arr_delay_min"]))
    cols[4].metric(
        "Cancellations",
        f"{cancelled:,}",
        help=f"{100 * cancelled / flights:.1f} % of flights" if flights else None,
    )
    if trend.empty:
        st.info("No flights for this carrier in the chosen period.")
    else:
        st.subheader("Daily delays")
        chart = trend.rename(
            columns={
                "avg_dep_delay_min": "departure delay (min)",
                "avg_arr_delay_min": "arrival delay (min)",
            }
        )
        st.line_chart(
            chart,
            x="flight_date",
            y=["departure delay (min)", "arrival delay (min)"],
            x_label="day",
            y_label="average delay (min)",
        )
        st.subheader("Daily flights and cancellations")
        st.bar_chart(
            trend.rename(columns={"flights": "flights", "cancelled": "cancelled"}),
            x="flight_date",
            y=["flights", "cancelled"],
            x_label="day",
            stack=False,
        )
    freshness_badge("overview", [kpi_at, trend_at], top)


def routes(f: dict) -> None:
    st.header("Routes · worst average arrival delay")
    top = st.container()
    months = f["months"]
    c1, c2, c3, c4 = st.columns(4)
    month = c1.selectbox(
        "Month", months, index=len(months) - 1, format_func=lambda m: f"{m:%b %Y}", key="month"
    )
    carrier = c2.selectbox(
        "Carrier", [None, *f["carriers"]], format_func=lambda c: c or "All carriers", key="rc"
    )
    origin = c3.selectbox(
        "Origin", [None, *f["airports"]], format_func=lambda a: a or "All origins", key="ro"
    )
    min_flights = c4.number_input("Min flights", min_value=1, value=20, step=5, key="minf")
    worst, worst_at = run(Q.worst_routes(month, carrier, origin, int(min_flights)))
    if worst.empty:
        st.info("No route matches these filters in this month.")
    else:
        worst["route"] = worst["origin"] + "→" + worst["dest"] + " (" + worst["carrier"] + ")"
        st.bar_chart(
            worst,
            x="route",
            y="avg_arr_delay_min",
            x_label="route",  # with horizontal=True, x is the category (vertical) axis
            y_label="average arrival delay (min)",
            horizontal=True,
            sort="-avg_arr_delay_min",
        )
        st.dataframe(
            worst[["route", "flights", "cancelled", "avg_arr_delay_min", "distance_miles"]].round(
                {"avg_arr_delay_min": 1, "distance_miles": 0}
            ),
            hide_index=True,
            width="stretch",
        )
    freshness_badge("routes", [worst_at], top)


def delay_and_rain(days: pd.DataFrame):
    """Daily departure delay (line, left axis) over precipitation (bars, right axis)."""
    import altair as alt

    base = alt.Chart(days).encode(x=alt.X("flight_date:T", title="day"))
    rain = base.mark_bar(opacity=0.35, color="#4c78a8").encode(
        y=alt.Y("precip_in:Q", title="precipitation (in)", axis=alt.Axis(orient="right")),
        tooltip=["flight_date:T", "precip_in:Q", "visibility_mi:Q"],
    )
    delay = base.mark_line(color="#e45756").encode(
        y=alt.Y("avg_dep_delay_min:Q", title="avg departure delay (min)"),
        tooltip=["flight_date:T", "avg_dep_delay_min:Q", "flights:Q"],
    )
    return alt.layer(rain, delay).resolve_scale(y="independent")


def weather(f: dict) -> None:
    st.header(f"Airports & weather · {f['origin']}")
    top = st.container()
    st.caption(f"{f['start']:%d %b %Y} – {f['end']:%d %b %Y}")
    days, days_at = run(Q.airport_weather(f["origin"], f["start"], f["end"]))
    if days.empty:
        st.info("No departures from this airport in the chosen period.")
    else:
        wet = days[days["precip_in"] > 0]
        cols = st.columns(3)
        cols[0].metric("Days", f"{len(days):,}")
        cols[1].metric(
            "Avg delay, dry days",
            _fmt_min(days[days["precip_in"] == 0]["avg_dep_delay_min"].mean()),
        )
        cols[2].metric("Avg delay, wet days", _fmt_min(wet["avg_dep_delay_min"].mean()))
        left, right = st.columns(2)
        with left:
            st.subheader("Delay vs precipitation")
            st.scatter_chart(
                days,
                x="precip_in",
                y="avg_dep_delay_min",
                x_label="precipitation (in)",
                y_label="avg departure delay (min)",
            )
        with right:
            st.subheader("Delay vs visibility")
            st.scatter_chart(
                days,
                x="visibility_mi",
                y="avg_dep_delay_min",
                x_label="visibility (mi)",
                y_label="avg departure delay (min)",
            )
        st.subheader("Daily delay and precipitation")
        st.altair_chart(delay_and_rain(days), width="stretch")
    freshness_badge("weather", [days_at], top)


# ---- layout -----------------------------------------------------------------------------------


def _months(first: date, last: date) -> list[date]:
    out, m = [], date(first.year, first.month, 1)
    while m <= last:
        out.append(m)
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return out


def sidebar() -> tuple[str, dict]:
    keys = list(PAGES)
    wanted = st.query_params.get("page", "overview")
    page = st.sidebar.radio(
        "Page",
        keys,
        index=keys.index(wanted) if wanted in keys else 0,
        format_func=PAGES.__getitem__,
        key="page",
    )
    st.query_params["page"] = page

    carriers = rows(Q.carriers())
    airports = rows(Q.airports())["origin"].tolist()
    bounds = rows(Q.date_bounds()).iloc[0]
    month_bounds = rows(Q.route_months()).iloc[0]
    if carriers.empty or not airports or pd.isna(bounds["first_date"]):
        raise Unavailable(
            f"The Gold tables are empty in the serving database. Run `{MATERIALIZE}`."
        )
    names = dict(zip(carriers["carrier"], carriers["carrier_name"], strict=True))
    codes = list(names)
    label = lambda c: f"{c} · {names[c]}" if names.get(c) else c  # noqa: E731

    st.sidebar.header("Filters")
    carrier = st.sidebar.selectbox(
        "Carrier",
        codes,
        index=codes.index("UA") if "UA" in codes else 0,
        format_func=label,
        key="carrier",
    )
    origin = st.sidebar.selectbox(
        "Airport",
        airports,
        index=airports.index("JFK") if "JFK" in airports else 0,
        key="airport",
    )
    first, last = bounds["first_date"], bounds["last_date"]
    picked = st.sidebar.date_input(
        "Date range",
        value=(max(first, last - timedelta(days=364)), last),
        min_value=first,
        max_value=last,
        key="dates",
    )
    picked = picked if isinstance(picked, list | tuple) else (picked,)
    start = picked[0]
    end = picked[1] if len(picked) > 1 else picked[0]
    st.sidebar.caption(f"Data from {first:%d %b %Y} to {last:%d %b %Y}.")
    if st.sidebar.button("Refresh data", help=f"Queries are cached for {CACHE_TTL_S} s."):
        fetch.clear()
        st.rerun()
    return page, {
        "carrier": carrier,
        "carrier_label": label(carrier),
        "carriers": codes,
        "origin": origin,
        "airports": airports,
        "start": start,
        "end": end,
        "months": _months(month_bounds["first_month"], month_bounds["last_month"]),
    }


def main() -> None:
    st.set_page_config(page_title="Flight operations", page_icon="✈️", layout="wide")
    st.sidebar.title("✈️ Flight operations")
    try:
        page, filters = sidebar()
        {"overview": overview, "routes": routes, "weather": weather}[page](filters)
    except Unavailable as exc:
        st.error(str(exc))
        st.stop()


if __name__ == "__main__":  # `streamlit run` and AppTest; importing has no effect
    main()
