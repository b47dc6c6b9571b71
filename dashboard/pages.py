"""The dashboard's pages, each drawn from the filters it shows, each under a freshness badge.

A page gets the filters (`app.sidebar`) and the ledger rows read at the start of the view; its
data is fetched at those lake versions, so its badge names the version its numbers come from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from dashboard import badge as badges
from dashboard import charts
from dashboard import queries as Q
from dashboard.data import load, resolve_url
from dashboard.metrics import kpis, with_averages
from platform_assets.specs import GOLD_BY_NAME
from resources.serving_db import redact

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator

# ---- freshness badge --------------------------------------------------------------------------


def freshness_badge(
    queries: list[Q.Query], ledger: dict, fetched_at: datetime, where: DeltaGenerator
) -> None:
    """The ledger's rows of the tables the page read, shown in `where` (atop the page)."""
    for table in sorted({t for q in queries for t in q.tables}):
        spec = GOLD_BY_NAME[table]
        row = ledger.get(table)
        if row is not None:
            row = dict(row)
            for col in ("lake_created_at", "loaded_at"):
                row[col] = pd.Timestamp(row[col]).to_pydatetime()
        b = badges.make_badge(
            table, row, spec.freshness_warn, spec.freshness_sla, tolerance=spec.lag_tolerance
        )
        show = {badges.GREEN: where.success, badges.AMBER: where.warning, badges.RED: where.error}
        show[b.colour](b.text, icon=badges.ICONS[b.colour])
    where.caption(
        f"View cached at {fetched_at:%Y-%m-%d %H:%M:%S} UTC (queries are cached per lake "
        f"version: a sync shows on the next view) · serving copy: {redact(resolve_url()[0])}"
    )


def _page(page: str, f: dict, ledger: dict) -> tuple[pd.DataFrame, Callable[[], None]]:
    """The page's one query's rows, and a function drawing the badge at the top of the page."""
    top = st.container()
    queries = Q.page_queries(page, f)
    (rows,), fetched_at = load(queries, ledger)
    return rows, lambda: freshness_badge(queries, ledger, fetched_at, top)


# ---- pages ------------------------------------------------------------------------------------


def _fmt_min(value: object) -> str:
    return "–" if value is None or bool(pd.isna(value)) else f"{value:.1f} min"


def _days(f: dict) -> str:
    return f"{f['start']:%d %b %Y} – {f['end']:%d %b %Y}"


def _months(f: dict) -> str:
    """Monthly tables cover every month the dates touch."""
    return f"whole months {f['start']:%b %Y} – {f['end']:%b %Y}"


def overview(f: dict, ledger: dict) -> None:
    """Flights, punctuality and cancellations of a carrier (or all) from an airport (or all).

    Per airport only the monthly route table has the numbers: whole months, no on-time count
    and no departure delay (so those tiles are not shown)."""
    where = f"{f['carrier_label']} · {f['origin_label']}"
    st.header(f"Overview · {where}")
    rows, badge = _page("overview", f, ledger)
    monthly = f["origin"] is not None
    st.caption(
        f"{_months(f).capitalize()}: per airport, figures come from the monthly route table"
        if monthly
        else _days(f)
    )
    k = kpis(rows)
    tiles: list[tuple[str, str, str | None]] = [("Flights", f"{k['flights']:,}", None)]
    if "on_time_rate" in k:
        rate = k["on_time_rate"]
        tiles.append(
            (
                "On-time rate",
                "–" if rate is None else f"{100 * rate:.1f} %",
                "Arrivals less than 15 minutes late, of departed flights.",
            )
        )
    if "avg_dep_delay_min" in k:
        tiles.append(("Avg departure delay", _fmt_min(k["avg_dep_delay_min"]), None))
    tiles.append(("Avg arrival delay", _fmt_min(k["avg_arr_delay_min"]), None))
    share = f"{100 * k['cancelled'] / k['flights']:.1f} % of flights" if k["flights"] else None
    tiles.append(("Cancellations", f"{k['cancelled']:,}", share))
    for col, (label, value, help_) in zip(st.columns(len(tiles)), tiles, strict=True):
        col.metric(label, value, help=help_)

    if rows.empty:
        st.info("No flights for these filters in the chosen period.")
    else:
        x, unit = ("month", "month") if monthly else ("flight_date", "day")
        chart = with_averages(rows)
        st.subheader(f"{'Monthly' if monthly else 'Daily'} delays")
        delays = {"avg_arr_delay_min": "arrival delay (min)"}
        if not monthly:
            delays = {"avg_dep_delay_min": "departure delay (min)", **delays}
        st.vega_lite_chart(
            chart, charts.lines(x, unit, delays, "average delay (min)"), width="stretch"
        )
        st.subheader(f"{'Monthly' if monthly else 'Daily'} flights and cancellations")
        st.vega_lite_chart(
            chart,
            charts.bars_and_line(x, unit, ("flights", "flights"), ("cancelled", "cancelled")),
            width="stretch",
        )
    badge()


def routes(f: dict, ledger: dict) -> None:
    """The worst routes by arrival delay over the period, for a carrier and an origin (or all)."""
    st.header("Routes · worst average arrival delay")
    f = {**f, "min_flights": st.number_input("Min flights", 1, value=20, step=5, key="minf")}
    rows, badge = _page("routes", f, ledger)
    st.caption(
        f"{f['carrier_label']} · from {f['origin_label']} · {_months(f)}"
        f"; routes with at least {f['min_flights']} flights in the period"
    )
    if rows.empty:
        st.info("No route matches these filters in this period.")
    else:
        rows["route"] = rows["origin"] + "→" + rows["dest"] + " (" + rows["carrier"] + ")"
        st.vega_lite_chart(
            rows,
            charts.ranked_bars("route", "avg_arr_delay_min", "average arrival delay (min)"),
            width="stretch",
        )
        shown = rows[["route", "flights", "cancelled", "avg_arr_delay_min", "distance_miles"]]
        st.dataframe(
            pd.DataFrame(shown).round({"avg_arr_delay_min": 1, "distance_miles": 0}),
            hide_index=True,
            width="stretch",
        )
    badge()


def weather(f: dict, ledger: dict) -> None:
    """Departure delay against precipitation and visibility, per day at an airport (or all)."""
    st.header(f"Airports & weather · {f['origin_label']}")
    days, badge = _page("weather", f, ledger)
    st.caption(_days(f) + ("" if f["origin"] else " · daily averages over all airports"))
    if days.empty:
        st.info("No departures from this airport in the chosen period.")
    else:
        delays, precip = days["avg_dep_delay_min"], days["precip_in"]
        cols = st.columns(3)
        cols[0].metric("Days", f"{len(days):,}")
        cols[1].metric("Avg delay, dry days", _fmt_min(delays[precip == 0].mean()))
        cols[2].metric("Avg delay, wet days", _fmt_min(delays[precip > 0].mean()))
        delay = ("avg_dep_delay_min", "avg departure delay (min)")
        left, right = st.columns(2)
        with left:
            st.subheader("Delay vs precipitation")
            st.vega_lite_chart(
                days, charts.scatter("precip_in", "precipitation (in)", *delay), width="stretch"
            )
        with right:
            st.subheader("Delay vs visibility")
            st.vega_lite_chart(
                days, charts.scatter("visibility_mi", "visibility (mi)", *delay), width="stretch"
            )
        st.subheader("Daily delay and precipitation")
        st.vega_lite_chart(
            days,
            charts.bars_and_line(
                "flight_date", "day", ("precip_in", "precipitation (in)"), delay, bar_right=True
            ),
            width="stretch",
        )
    badge()
