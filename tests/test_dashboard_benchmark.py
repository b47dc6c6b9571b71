"""`benchmarks/dashboard_latency.py --json --quick` runs end to end and reports every number.

Only the report's shape and its correctness flags are asserted (timings belong in the output):
both engines return the same rows for every page, no page view failed while syncs ran, and the
app itself drew every page of its concurrent sessions (`app_sessions`, small) without an error.
"""

from __future__ import annotations

from tests.support.benchmarks import run_benchmark_quick


def test_dashboard_latency_quick_reports_every_page():
    result = run_benchmark_quick("dashboard_latency.py")

    assert set(result["pages"]) == {"overview", "routes", "weather"}
    for page in result["pages"].values():
        assert page["queries"]
        for engine in ("rds_ms", "lake_ms"):
            assert 0 < page[engine]["p50"] <= page[engine]["p95"]
    assert result["same_rows_on_both_engines"] is True
    for phase in ("idle", "while_syncing"):
        run = result["concurrent"][phase]
        assert run["clients"] == 8 and run["page_views"] > 0
        assert run["failed_page_views"] == 0, run["errors"]
        assert 0 < run["p50_ms"] <= run["p95_ms"]
    assert result["concurrent"]["while_syncing"]["syncs_completed"] >= 1
    assert result["concurrent"]["while_syncing"]["sync_errors"] == []
    assert set(result["index_scans"]) >= {"daily_performance", "worst_routes", "airport_weather"}

    app = result["app_sessions"]
    assert app["sessions"] == 2 and app["views"] == 2 * app["views_per_session"] > 0
    assert app["errors"] == 0, app["error_samples"]
    assert 0 < app["p50_ms"] <= app["p95_ms"] and app["single_p50_ms"] > 0
