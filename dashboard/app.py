"""Flight-operations dashboard on the RDS serving copy of the Gold tables (read-only role).

    uv run streamlit run dashboard/app.py

Reads `DASHBOARD_RDS_URL` (the `dashboard_reader` login on RDS) or, when unset, the read-only
role on the embedded PostgreSQL under `.local/` (`uv run dagster asset materialize --select '*'`
builds and syncs it). Every statement is in `dashboard/queries.py`; every page shows the
freshness badge from `platform.sync_ledger` (`dashboard/badge.py`). `?page=routes` or
`?page=weather` in the URL opens a page directly.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import queries as Q  # noqa: E402
from dashboard.data import CACHE_TTL_S, MATERIALIZE, Unavailable, fetch, rows  # noqa: E402
from dashboard.pages import overview, routes, weather  # noqa: E402

PAGES = {"overview": "Overview", "routes": "Routes", "weather": "Airports & weather"}


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
