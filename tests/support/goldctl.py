"""goldctl as an operator runs it: a subprocess with the platform's settings, held at a pause
point, an unreachable database's URL, and waiting on a condition."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import _free_port

PROJECT = Path(__file__).resolve().parents[2]
PLATFORM_ENV = {"RDS_URL", "LAKE_URL", "SQL_ENGINE", "S3_ENDPOINT_URL", "EMBEDDED_PGDATA"}


def goldctl_env(lake, serving, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in PLATFORM_ENV}
    return {**base, "LAKE_URL": lake.url, "RDS_URL": serving.url, **extra}


def goldctl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "platform_assets.cli", *args],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def paused_goldctl(point: str, marker: Path, *args: str, env: dict[str, str]):
    """`goldctl ARGS` started and held at pause point `point` (see serving/pausepoints.py)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "platform_assets.cli", *args],
        env={**env, "GOLD_SYNC_PAUSE_AT": point, "GOLD_SYNC_PAUSE_FILE": str(marker)},
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: marker.exists() or proc.poll() is not None, 180, f"pause at {point}")
    if proc.poll() is not None:
        raise AssertionError(f"goldctl ended before {point}: {proc.communicate()}")
    return proc


def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll `condition` until true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


PASSWORD = "Sup3r-S3cret-pw"


def unreachable_rds_url(password: str = PASSWORD) -> str:
    """A well-formed RDS_URL with a password, on a port nothing listens on."""
    return f"postgresql://loader:{password}@127.0.0.1:{_free_port()}/serving"


def goldctl_isolated(*args: str, env: dict[str, str], via_script: bool = False):
    """goldctl in a subprocess with exactly `env`'s settings on a clean environment, as a
    module or through the installed `goldctl` script."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "RDS_URL",
            "LAKE_URL",
            "SQL_ENGINE",
            "S3_ENDPOINT_URL",
            "EMBEDDED_PGDATA",
            "DASHBOARD_RDS_URL",
            "ALERT_WEBHOOK_URL",
        }
    }
    script = Path(sys.executable).parent / "goldctl"
    cmd = [str(script)] if via_script else [sys.executable, "-m", "platform_assets.cli"]
    return subprocess.run(
        [*cmd, *args],
        env={**base, **env},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
