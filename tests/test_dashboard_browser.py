"""The dashboard in a real headless Chromium: `streamlit run` as a subprocess, rendered client side.

The app runs as the read-only role on the test database (DASHBOARD_RDS_URL); Chromium is driven
through chromedriver (dashboard/browser.py). Skips when Chromium or chromedriver is missing
(.ci/run installs them).
"""

from __future__ import annotations

import pytest

from dashboard.browser import Browser, missing, rendered, streamlit_app
from platform_assets.lake.tables import GoldLake
from tests.support.dashboard import gold_database

REASON = missing()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"headless browser test: {REASON}")


@pytest.fixture(scope="module")
def gold(pg_url, silver_lake_dir, tmp_path_factory):
    return gold_database(pg_url, silver_lake_dir, tmp_path_factory.mktemp("dash"))


def test_pages_render_badge_and_charts_in_chromium(gold, tmp_path):
    serving, lake = gold
    env = {"DASHBOARD_RDS_URL": serving.dashboard_url()}
    with streamlit_app(env) as base, Browser() as browser:
        for page, table, heading, min_charts in (
            ("overview", "carrier_daily_performance", "Overview · UA", 2),
            ("routes", "route_monthly_performance", "Routes · worst average arrival delay", 1),
            ("weather", "airport_daily_weather", "Airports & weather · All airports", 3),
        ):
            browser.get(f"{base}/?page={page}")
            text, charts = browser.wait_for(
                lambda page=page, table=table: (
                    (r := rendered(browser)) and f"gold.{table}" in r[0] and r
                ),
                what=f"{page}: badge of gold.{table} and a chart",
            )
            version = GoldLake(lake).current_state(table).state_id
            assert f"GREEN · gold.{table} shows lake version {version}" in text
            assert "View cached at " in text
            assert heading in text
            # Charts draw asynchronously: wait until every chart of the page is on screen.
            charts = browser.wait_for(
                lambda n=min_charts: (
                    (
                        c := browser.js(
                            "return document.querySelectorAll("
                            '\'[data-testid="stVegaLiteChart"] canvas, '
                            '[data-testid="stVegaLiteChart"] svg\').length'
                        )
                    )
                    >= n
                    and c
                ),
                what=f"{min_charts} chart(s) on {page}",
            )
            assert charts >= min_charts
            assert "Traceback" not in text and "Cannot reach" not in text
        shot = browser.screenshot(tmp_path / "weather.png")
        assert shot.stat().st_size > 10_000
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unreachable_database_message_in_chromium():
    env = {"DASHBOARD_RDS_URL": "postgresql://dashboard_reader:hunter2@127.0.0.1:9/none"}
    with streamlit_app(env) as base, Browser() as browser:
        browser.get(base)
        text = browser.wait_for(
            lambda: "Database unavailable" in browser.text() and browser.text(),
            what="the unreachable-database message",
        )
        assert "DASHBOARD_RDS_URL=postgresql://dashboard_reader:***@127.0.0.1:9/none" in text
        assert "goldctl status" in text  # where to look, and no advice to rebuild a lake
        assert "dg launch" not in text and "materialize" not in text  # that is not down
        assert "hunter2" not in text and "Traceback" not in text
