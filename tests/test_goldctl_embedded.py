"""`goldctl rds-url` / `goldctl stop-db` on the embedded server: start, stop, data kept, restart."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest


def goldctl(pgdata, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RDS_URL"}
    env["EMBEDDED_PGDATA"] = str(pgdata)
    return subprocess.run(
        [sys.executable, "-m", "platform_assets.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_stop_db_stops_the_embedded_server_and_keeps_its_data(tmp_path):
    pgdata = tmp_path / "pg"
    assert goldctl(pgdata, "stop-db").stdout.startswith("not running")

    url = goldctl(pgdata, "rds-url").stdout.strip()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (42)")

    stopped = goldctl(pgdata, "stop-db")
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped"), stopped.stderr
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)

    url = goldctl(pgdata, "rds-url").stdout.strip()  # starts it again on the same data
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone() == (42,)
    assert goldctl(pgdata, "stop-db").stdout.startswith("stopped")


def test_stop_db_refuses_when_rds_url_is_set(tmp_path):
    env = {**os.environ, "RDS_URL": "postgresql://loader:s3cret@db.example:5432/serving"}
    done = subprocess.run(
        [sys.executable, "-m", "platform_assets.cli", "stop-db"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "RDS_URL" in done.stderr and "s3cret" not in done.stderr + done.stdout


def test_stop_db_stops_the_server_even_after_its_users_were_killed(tmp_path):
    """A process killed with SIGKILL leaves its pid in the package's handle list; stop-db must
    still stop the server, and say so only when it did."""
    pgdata = tmp_path / "pg"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal; from resources import embedded_pg; "
            f"embedded_pg.url({str(pgdata)!r}); os.kill(os.getpid(), signal.SIGKILL)",
        ],
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -9
    assert (pgdata / ".handle_pids.json").read_text() not in ("", "[]")  # the dead handle
    url = goldctl(pgdata, "rds-url").stdout.strip()
    psycopg.connect(url, connect_timeout=5).close()

    stopped = goldctl(pgdata, "stop-db")
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped"), stopped.stderr
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    assert goldctl(pgdata, "stop-db").stdout.startswith("not running")
