"""The README's quick start as a newcomer types it: the local instance file, `dg launch --assets
'*'`, `dg check defs` (CI runs it here) and `dg list defs`, each without a warning."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NOISE = ("Warning", "No dagster instance configuration", "Telemetry", "deprecated", "superseded")


def _dg(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "dg"), *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _quiet(done: subprocess.CompletedProcess) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    noisy = [line for line in output.splitlines() if any(n in line for n in NOISE)]
    assert noisy == [], noisy


def test_quick_start_commands_say_nothing_to_ignore(tmp_path, serving):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "deploy" / "dagster.local.yaml", home / "dagster.yaml")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "GOLD_"))},
        "DAGSTER_HOME": str(home),
        "LAKE_URL": str(tmp_path / "lake"),
        "RDS_URL": serving.url,
        "VIRTUAL_ENV": str(BIN.parent),
    }
    checked = _dg("check", "defs", env=env)
    _quiet(checked)
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    listed = _dg("list", "defs", "--json", env=env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "lake/gold/carrier_daily_performance" in listed.stdout

    built = _dg("launch", "--assets", "*", env=env)
    _quiet(built)
    assert "RUN_SUCCESS" in built.stdout + built.stderr
    assert (tmp_path / "lake" / "gold" / "airport_daily_weather" / "_manifest.json").exists()
