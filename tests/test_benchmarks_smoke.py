"""The sync benchmark runs end to end and reports what it promises.

Only the shape of the report is checked: timings depend on the machine, so they belong in the
benchmark's own output, never in a test's pass/fail.
"""

from __future__ import annotations

from tests.benchmark_runner import run_benchmark_quick

METHODS = ("loader", "to_sql", "psql_copy")
TARGETS = ("loader_vs_psql_copy_met", "loader_vs_to_sql_met", "peak_memory_growth_met")


def test_sync_throughput_quick_reports_every_number():
    result = run_benchmark_quick("sync_throughput.py")

    assert result["rows"] == 200_000
    assert 0 < result["to_sql_rows"] <= result["rows"]
    for method in METHODS:
        assert result["rows_per_s"][method] > 0
        assert len(result["runs_rows_per_s"][method]) == result["repeats_done"] >= 1
    assert result["loader_vs_psql_copy"] > 0
    assert result["loader_vs_to_sql"] > 0

    memory = result["peak_memory"]
    assert memory["rows_1x"] == result["rows"]
    assert memory["rows_scaled"] == memory["scale"] * result["rows"]
    assert memory["peak_rss_mb_1x"] > 0
    assert memory["peak_rss_mb_scaled"] > 0
    assert result["peak_memory_growth"] > 0

    for target in TARGETS:
        assert isinstance(result["targets"][target], bool)
    assert isinstance(result["all_targets_met"], bool)


def test_sync_units_quick_reports_each_kind_of_change():
    result = run_benchmark_quick("sync_units.py")

    assert result["scale_years"] == 1 and result["months"] == 12
    carrier = result["tables"]["carrier_daily_performance"]
    assert carrier["noop"]["action"] == "unchanged" and carrier["noop"]["units_reloaded"] == 0
    assert carrier["one_month"]["units_reloaded"] == 1  # only the month that changed
    assert carrier["schema_change"]["units_reloaded"] == 12  # a new shape: every month
    assert carrier["full_reload"]["units_reloaded"] == 12
    weather = result["tables"]["airport_daily_weather"]
    assert weather["one_month"]["units_reloaded"] == 1  # the whole table is one unit
    for table in result["tables"].values():
        for step in table.values():
            assert step["bad_reads"] == 0 and step["seconds"] > 0
