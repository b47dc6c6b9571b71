"""Run a benchmark script the way a user does (`--json --quick`) and parse its one JSON object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark_quick(name: str) -> dict:
    """On its own throwaway PostgreSQL: RDS URLs are removed so a benchmark never leaves."""
    env = {k: v for k, v in os.environ.items() if k not in ("RDS_URL", "DASHBOARD_RDS_URL")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), "--json", "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)
