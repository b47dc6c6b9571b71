"""Run a benchmark script the way a user does (`--json`) and parse its one JSON object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(name: str, *args: str, timeout: float = 300) -> dict:
    """On its own throwaway PostgreSQL: RDS URLs are removed so a benchmark never leaves."""
    env = {k: v for k, v in os.environ.items() if k not in ("RDS_URL", "DASHBOARD_RDS_URL")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), "--json", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def run_benchmark_quick(name: str) -> dict:
    return run_benchmark(name, "--quick")
