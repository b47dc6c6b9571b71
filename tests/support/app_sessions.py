"""Whole page views as users get them: the Streamlit app itself, in concurrent sessions.

Each session is a process running `streamlit.testing.v1.AppTest` on `dashboard/app.py` (the
whole script: ledger read, sidebar, every query and chart of the page), as the read-only role.
A session first draws the default Overview (not timed: a server's imports are warm), then
alternates: switch page, change the page's filters (carrier, airport, a random period), each
a timed view, so most views miss the data cache. Sessions start together (a barrier).
Used by `benchmarks/dashboard_latency.py --json` (`app_sessions`).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
import traceback
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import date
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event


APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGES = ("overview", "routes", "weather")
CARRIERS = ("*", "UA", "AA", "DL", "B6", "EV", "WN", "US", "MQ", "9E")
AIRPORTS = ("*", "EWR", "JFK", "LGA")


def _period(rng: random.Random, first: date, last: date) -> tuple[date, date]:
    days = (last - first).days
    start = first + timedelta(days=rng.randrange(max(1, days - 30)))
    return start, min(last, start + timedelta(days=rng.choice((30, 91, 182, 364))))


def _session(
    i: int, url: str, views: int, bounds: tuple[date, date], start: Event, results: Queue
) -> None:
    """One user: `views` timed page views; (ms, error or None) for each into `results`."""
    os.environ["DASHBOARD_RDS_URL"] = url
    from streamlit.testing.v1 import AppTest

    rng = random.Random(i)
    at = AppTest.from_file(APP, default_timeout=60).run()
    start.wait(300)
    out = []
    for n in range(views):
        try:
            if n % 2 == 0:
                at.sidebar.radio(key="page").set_value(PAGES[(i + n // 2) % len(PAGES)])
            else:
                page = at.sidebar.radio(key="page").value
                if page != "weather":
                    at.sidebar.selectbox(key="carrier").set_value(rng.choice(CARRIERS))
                at.sidebar.selectbox(key="airport").set_value(rng.choice(AIRPORTS))
                at.sidebar.date_input(key="dates").set_value(_period(rng, *bounds))
            t0 = time.perf_counter()
            at.run()
            ms = (time.perf_counter() - t0) * 1000
            bad = at.exception or at.error
            out.append((ms, str(bad[0].value)[:200] if bad else None))
        except Exception as exc:  # a failed view is counted, not fatal
            out.append((None, f"{type(exc).__name__}: {exc}"[:200] + traceback.format_exc()[-200:]))
    results.put(out)


def run(url: str, bounds: tuple[date, date], sessions: int, views: int) -> list[tuple]:
    """`sessions` concurrent sessions of `views` views each: every (ms, error) measured."""
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(sessions + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_session, args=(i, url, views, bounds, start, results))
        for i in range(sessions)
    ]
    for p in procs:
        p.start()
    start.wait(300)  # every session has drawn its first page
    out = [item for _ in procs for item in results.get(timeout=600)]
    for p in procs:
        p.join(60)
    return out
