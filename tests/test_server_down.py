"""A serving database that is down is reported as down, on every surface, in one line.

The embedded server's data folder exists (it was built) but the server does not start (here a
setting it refuses; a full disk does the same): `goldctl status` prints one line naming the
folder and the server's own FATAL line and exits 2; the dashboard says "Database unavailable"
with that reason, not "run materialize" (the platform is built; the server is what is down).
"""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.data import MATERIALIZE
from tests.support.app_sessions import APP
from tests.support.goldctl import goldctl, goldctl_env
from tests.support.pg_server import embedded


@pytest.fixture
def broken_server(tmp_path):
    """A data folder whose server was built, stopped, and now refuses to start."""
    pgdata = tmp_path / "pg"
    embedded("url", pgdata)  # in a subprocess: this process holds no handle on the server
    embedded("stop", pgdata)
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write("\nmax_connections = banana\n")
    return pgdata


def test_goldctl_status_says_the_database_is_down_in_one_line(broken_server, local_lake):
    env = {k: v for k, v in goldctl_env(local_lake, local_lake).items() if k != "RDS_URL"}
    env["EMBEDDED_PGDATA"] = str(broken_server)
    done = goldctl("status", env=env)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "the serving database is unavailable" in lines[0]
    assert f"{broken_server} does not start" in lines[0] and "banana" in lines[0], lines[0]


def test_the_dashboard_says_database_unavailable(broken_server, monkeypatch):
    monkeypatch.delenv("DASHBOARD_RDS_URL", raising=False)
    monkeypatch.delenv("RDS_URL", raising=False)
    monkeypatch.setenv("EMBEDDED_PGDATA", str(broken_server))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("Database unavailable: the embedded PostgreSQL at"), error
    assert "banana" in error and MATERIALIZE not in error
