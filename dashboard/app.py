"""Flight-operations dashboard on the RDS serving copy of the Gold tables (read-only role).

    uv run streamlit run dashboard/app.py

Reads `DASHBOARD_RDS_URL` (the `dashboard_reader` login on RDS) or, when unset, the read-only
role on the embedded PostgreSQL under `.local/` (`uv run dg launch --assets '*'`
builds and syncs it). Every statement is in `dashboard/queries.py`; every page shows the
freshness badge from `platform.sync_ledger` (`dashboard/badge.py`). `?page=routes` or
`?page=weather` in the URL opens a page directly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import data  # noqa: E402
from dashboard import queries as Q  # noqa: E402
from dashboard.data import MATERIALIZE, Unavailable, VersionMoved  # noqa: E402
from dashboard.pages import overview, routes, weather  # noqa: E402

PAGES = {"overview": "Overview", "routes": "Routes", "weather": "Airports & weather"}
DRAW = {"overview": overview, "routes": routes, "weather": weather}
T = TypeVar("T")
ALL = "*"  # the "all carriers" / "all airports" choice (None would read as "nothing picked")
# The sidebar filters each page applies (and so shows); the others are hidden, not ignored.
FILTERS = {
    "overview": ("carrier", "airport", "dates"),
    "routes": ("carrier", "airport", "dates"),
    "weather": ("airport", "dates"),
}


# ---- layout -----------------------------------------------------------------------------------


def choose_page() -> str:
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
    return page


def _kept(key: str, default: T) -> T:
    """A filter's last value: Streamlit forgets a widget's state on a page that does not draw
    it, so each value is also kept under `_<key>` and restored when the widget comes back."""
    return st.session_state.get(key, st.session_state.get(f"_{key}", default))


def _keep(key: str, value: object) -> None:
    st.session_state[f"_{key}"] = value


def _select(
    label: str, key: str, options: list[str], default: str, format_func: Callable[[str], str]
) -> str:
    kept = _kept(key, default)
    index = options.index(kept) if kept in options else 0
    value = st.sidebar.selectbox(label, options, index=index, format_func=format_func, key=key)
    _keep(key, value)
    return value


@st.cache_data(show_spinner=False, max_entries=64)
def filter_lists(versions: tuple) -> dict:
    """Carriers, airports and the first and last date, at the given lake versions."""
    (carriers, airports, bounds), _ = data.load(
        [make() for make in Q.FILTER_QUERIES], dict(versions)
    )
    if carriers.empty or airports.empty or pd.isna(bounds.iloc[0]["first_date"]):
        raise Unavailable(
            f"The Gold tables are empty in the serving database. Run `{MATERIALIZE}`."
        )
    return {
        "carriers": dict(zip(carriers["carrier"], carriers["carrier_name"], strict=True)),
        "airports": airports["origin"].tolist(),
        "first": bounds.iloc[0]["first_date"],
        "last": bounds.iloc[0]["last_date"],
    }


def sidebar(page: str, ledger: dict) -> dict:
    """The filters `page` applies, drawn in the sidebar; None for carrier/origin means all."""
    lists = filter_lists(tuple(sorted(ledger.items())))
    names = lists["carriers"]
    carrier_label = lambda c: "All carriers" if c == ALL else f"{c} · {names.get(c) or c}"  # noqa: E731
    airport_label = lambda a: "All airports" if a == ALL else a  # noqa: E731
    first, last = lists["first"], lists["last"]
    f: dict[str, Any] = {"carrier": ALL, "origin": ALL, "start": first, "end": last}
    shown = FILTERS[page]
    st.sidebar.header("Filters")
    if "carrier" in shown:
        default = "UA" if "UA" in names else ALL
        f["carrier"] = _select("Carrier", "carrier", [ALL, *names], default, carrier_label)
    if "airport" in shown:
        f["origin"] = _select("Airport", "airport", [ALL, *lists["airports"]], ALL, airport_label)
    if "dates" in shown:
        default = (max(first, last - timedelta(days=364)), last)
        kept = tuple(min(max(d, first), last) for d in _kept("dates", default))
        picked = st.sidebar.date_input(
            "Date range", value=kept, min_value=first, max_value=last, key="dates"
        )
        picked = list(picked) if isinstance(picked, list | tuple) else [picked]
        f["start"], f["end"] = picked[0], picked[-1]  # one date picked: that day
        _keep("dates", (f["start"], f["end"]))
        st.sidebar.caption(f"Data from {first:%d %b %Y} to {last:%d %b %Y}.")
    f["carrier_label"] = carrier_label(f["carrier"])
    f["origin_label"] = airport_label(f["origin"])
    return {**f, "carrier": _none(f["carrier"]), "origin": _none(f["origin"])}


def _none(choice: str) -> str | None:
    return None if choice == ALL else choice


def main() -> None:
    st.set_page_config(page_title="Flight operations", page_icon="✈️", layout="wide")
    st.sidebar.title("✈️ Flight operations")
    try:
        page = choose_page()
        ledger = data.ledger()  # first, every view: the lake versions this view shows
        DRAW[page](sidebar(page, ledger), ledger)
    except VersionMoved:  # a sync landed during this view: draw it again at the new version
        st.rerun()
    except Unavailable as exc:
        st.error(str(exc))
        st.stop()


if __name__ == "__main__":  # `streamlit run` and AppTest; importing has no effect
    main()
