"""The loader benchmarks (sync_throughput, peers) run end to end and report what they promise.

Only the shape of the report is checked: timings depend on the machine, so they belong in the
benchmark's own output, never in a test's pass/fail.
"""

from __future__ import annotations

from platform_assets.keys import RDS_CHECKS
from tests.support.benchmarks import run_benchmark, run_benchmark_quick

METHODS = ("loader", "to_sql", "psql_copy")
PEER_TOOLS = {"ours", "psql_copy", "dlt", "sling", "to_sql"}
PEERS_ROWS = 20_000
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

    publish = result["publish"]  # the whole forced sync, with and without verification
    assert publish["rows"] == result["rows"]
    assert all(len(runs) == result["repeats_done"] for runs in publish["runs_seconds"].values())
    assert result["verified_vs_unverified"] == publish["verified_vs_unverified"] > 0
    assert set(publish["cpu_seconds"]) == {"verified", "unverified"}  # the server is local
    assert min(publish["cpu_seconds"].values()) > 0
    assert publish["cpu_verified_vs_unverified"] > 0

    for target in (*TARGETS, "verified_vs_unverified_met"):
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


def test_peers_small_run_loads_every_tool_and_ours_serves_no_bad_read():
    """Every tool replaces both tables (the benchmark fails if one leaves a table other than
    full, or does not replace it); the reader never sees our sync serve a bad read."""
    result = run_benchmark(
        "peers.py", "--rows", str(PEERS_ROWS), "--rounds", "1", "--scale-years", "1", timeout=900
    )

    assert result["rows"] == PEERS_ROWS
    assert set(result["rows_per_s"]) == PEER_TOOLS
    assert set(result["bad_reads"]) == PEER_TOOLS
    assert set(result["peak_rss_mb"]) == PEER_TOOLS
    assert all(v > 0 for v in result["rows_per_s"].values())
    assert all(v > 0 for v in result["peak_rss_mb"].values())
    assert result["ours_vs_best_peer"] > 0
    assert result["best_peer"] in ("dlt", "sling")
    assert result["versions"]["dlt"] == "1.31.0"
    assert result["versions"]["sling"] == "1.4.11"
    assert result["dlt_path"]["winner"] in result["dlt_path"]["rows_per_s"]

    tables = result["tables"]
    assert set(tables) == {"gold_like", "carrier_daily_performance"}
    assert tables["carrier_daily_performance"]["scale_years"] == 1
    for table in tables.values():
        assert table["bad_reads"]["ours"] == 0
        for name, tool in table["tools"].items():
            assert tool["loaded_rows"] == [table["rows"]], name
            assert len(tool["runs_rows_per_s"]) == result["rounds"] == 1
            assert tool["reads"] > 0, name  # the reader watched every tool's replace
    months = tables["carrier_daily_performance"]["tools"]["ours"]["last_run_detail"]
    assert months["months_reloaded"] == 12  # a forced sync reloads every month of a year


def test_many_tables_quick_reports_every_cost_per_count():
    """Generated specs reach every surface: the sensor, goldctl, the check run and the sync see
    them all, in sync, with one serving connection per sensor tick and status."""
    result = run_benchmark("many_tables.py", "--quick", timeout=900)

    assert set(result["counts"]) == {"4", "5"}  # 1 and 2 generated tables + the 3 shipped ones
    for count in result["counts"].values():
        assert count["out_of_sync"] == [] and count["noop_sync_actions"] == ["unchanged"]
        assert count["sensor_run_requests"] == 0
        assert count["checks"]["checks"] == len(RDS_CHECKS) * count["tables"]  # schedule's tick
        assert count["connections"]["sensor_tick"] == count["connections"]["goldctl_status"] == 1
        for key in ("definitions_load_s", "sensor_tick_s", "goldctl_status_s", "noop_sync_s"):
            assert count[key] > 0
    ran = result["counts"]["4"]["checks"]  # its run, timed at the first count only
    assert ran["evaluations"] == ran["checks"] and ran["failed"] == 0 and ran["success"]
    assert result["counts"]["5"]["check_run_s"] is None
    assert set(result["growth"]) >= {"sensor_tick_s", "goldctl_status_s"}


def test_fingerprint_cost_reports_both_checksums_and_the_nul_scan():
    result = run_benchmark("fingerprint_cost.py", "--rows", "20000", "--repeats", "1")
    assert result["rows"] == 20_000
    runs = result["postgres_checksum_s"]["runs"]
    assert len(runs["exact"]) == len(runs["replaced"]) == 1
    assert result["exact_vs_replaced"] > 0 and result["nul_scan_vs_load"] > 0
