"""The dashboard has no login, so by default it listens on loopback only.

`streamlit run dashboard/app.py` as README says (only a port given, to run beside other tests),
from the project folder: every socket it listens on is 127.0.0.1, because of
`.streamlit/config.toml`. The README's production commands bind the webserver to 127.0.0.1 too.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil

from dashboard.browser import free_port
from tests.support.goldctl import wait_for

ROOT = Path(__file__).resolve().parent.parent


def _listening(pid: int) -> set[str]:
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return set()
    found = set()
    for proc in procs:
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found |= {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}
    return found


def _healthy(port: int) -> bool:
    """Streamlit's own readiness (what dashboard/browser.py waits for): the server has started,
    so every socket it opens is open, and its SIGTERM handler is installed."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_the_dashboard_listens_on_loopback_only(tmp_path):
    port = free_port()
    log = (tmp_path / "streamlit.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _healthy(port) or proc.poll() is not None, 120, "streamlit")
        assert proc.poll() is None, (tmp_path / "streamlit.log").read_text()
        assert _listening(proc.pid) == {"127.0.0.1"}
    finally:
        proc.terminate()  # started: it stops on SIGTERM at once
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a bound, never a wait the test relies on
            proc.kill()
            proc.wait()
        log.close()


def test_readme_production_commands_bind_the_webserver_to_loopback():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^uv run dagster-webserver .*$", readme, flags=re.M)
    assert commands and all("-h 127.0.0.1" in c for c in commands), commands
    assert "0.0.0.0 -p" not in readme
