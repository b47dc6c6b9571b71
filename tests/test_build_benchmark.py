"""benchmarks/build.py runs the README's build three times and reports what each one did.

Timings are the benchmark's output, never a pass/fail here; what each build did is checked.
"""

from __future__ import annotations

from tests.support.benchmarks import run_benchmark

KINDS = ("cold", "noop", "one_table")


def test_build_benchmark_reports_time_and_what_each_build_did():
    result = run_benchmark("build.py", timeout=1800)
    for kind in KINDS:
        build = result[kind]
        assert build["run_status"] == "SUCCESS"
        assert 0 < build["steps_s"] < build["wall_s"]
        assert abs(build["steps_share"] - build["steps_s"] / build["wall_s"]) < 0.01
        assert len(build["per_step_s"]) == 16  # 5 Bronze, 5 Silver, 3 Gold, 3 RDS
        # where the time outside the steps went adds up to it
        assert abs(sum(build["outside"].values()) - build["outside_s"]) < 0.2
        assert build["events"] > 16 * 3  # at least each step's start, output and success
    assert result["noop"]["new_gold_versions"] == 0
    assert set(result["noop"]["rds"].values()) == {"unchanged"}
    assert result["one_table"]["new_gold_versions"] == {"airport_daily_weather": 1}
    assert result["one_table"]["rds"] == {
        "carrier_daily_performance": "unchanged",
        "route_monthly_performance": "unchanged",
        "airport_daily_weather": "loaded",
    }
    assert result["goldctl_help_s"] > 0 and result["goldctl_status_s"] > 0
