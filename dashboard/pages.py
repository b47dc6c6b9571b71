"""The dashboard's pages, each drawn from the sidebar's filters, each under a freshness badge."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from dashboard import badge as badges
from dashboard import queries as Q
from dashboard.data import CACHE_TTL_S, resolve_url, run
from platform_assets.specs import GOLD_BY_NAME
from resources.serving_db import redact

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
