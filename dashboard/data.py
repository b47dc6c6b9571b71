"""The dashboard's data access: a small pool of read-only connections to the serving copy,
results cached per lake version, and every database failure turned into a message that says
what to do (never a password).

`DASHBOARD_RDS_URL` (the `dashboard_reader` login on RDS) or, when unset, the read-only role on
the embedded PostgreSQL under `.local/`.

Each page view reads the ledger's table rows first (one cheap, uncached query) and passes the
lake versions into the cached fetches as part of their key: a sync shows on the next view, and
the badge and the data of a view always name the same version. A fetch re-reads the versions
in the transaction that read the data (after its locks: a swap cannot slip in between); if
they moved since the view's first read, the view is drawn again (`VersionMoved`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pandas as pd
import psycopg
import streamlit as st
from psycopg import sql as pgsql
from psycopg_pool import ConnectionPool, PoolTimeout

from dashboard import queries as Q
from platform_assets.cli import BUILD_COMMAND
from platform_assets.serving.ledger import one_snapshot
from platform_assets.status import read_rds_facts
from resources.serving_db import error_reason, libpq_url, redact

# Queries are keyed by lake version, so the TTL only bounds memory (and the badge's ages).
CACHE_TTL_S = int(os.environ.get("DASHBOARD_CACHE_TTL_S", "600"))
# RDS db.t3.micro allows ~80 connections: one app process holds at most POOL_MAX.
POOL_MAX = int(os.environ.get("DASHBOARD_POOL_MAX", "4"))
WAIT_S = 3.0  # for a free connection; then say why (a down server fails within this)
STATEMENT_TIMEOUT_S = 15
MATERIALIZE = BUILD_COMMAND
# A server that is down is not a platform to build: say so, and that nothing needs redoing.
COMES_BACK = (
    "The data shows again on the next view once the server is up; `uv run goldctl status` "
    "says what it sees (check the URL, the server and its disk)."
)


class Unavailable(Exception):
    """The dashboard cannot show data; the message says what to do (never a password)."""


class VersionMoved(Exception):
    """A sync swapped a table between the view's ledger read and its data: draw it again."""


# ---- connections --------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def resolve_url() -> tuple[str, str]:
    """(libpq URL, what it came from). The embedded default starts the local server if needed."""
    env = os.environ.get("DASHBOARD_RDS_URL", "").strip()
    if env:
        return libpq_url(env), "DASHBOARD_RDS_URL"
    from platform_assets.settings import open_resources

    with open_resources() as resources:
        return resources["serving"].dashboard_url(), "embedded default"


def _configure(conn: psycopg.Connection) -> None:
    """Every pooled session is read-only, whatever role the URL names, and time-boxed."""
    conn.execute("SET default_transaction_read_only = on")
    conn.execute(
        pgsql.SQL("SET statement_timeout = {}").format(pgsql.Literal(f"{STATEMENT_TIMEOUT_S}s"))
    )


@st.cache_resource(show_spinner=False, on_release=lambda p: p.close(timeout=1))
def pool(url: str) -> ConnectionPool:
    """One pool per server for all sessions of the app process (1..POOL_MAX connections).

    Connections are checked when taken (a server restart costs one reconnect, not an error),
    and a failed reconnect gives up after WAIT_S, so the next view tries again at once."""
    return ConnectionPool(
        url,
        min_size=1,
        max_size=POOL_MAX,
        open=True,
        timeout=WAIT_S,
        reconnect_timeout=WAIT_S,
        check=ConnectionPool.check_connection,
        configure=_configure,
        name="gold-dashboard",
        kwargs={
            "autocommit": True,
            "connect_timeout": 5,
            "application_name": "gold-dashboard",
        },
    )


def _frame(cur: psycopg.Cursor) -> pd.DataFrame:
    return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or ()])


def _versions(conn: psycopg.Connection, tables: tuple[str, ...]) -> dict[str, dict]:
    q = Q.ledger_rows(tables)
    with conn.cursor() as cur:
        cur.execute(q.statement(), q.params)
        return {r["table_name"]: r for r in _frame(cur).to_dict("records")}


def version_key(ledger: dict[str, dict], tables: Iterable[str]) -> tuple:
    """(table, lake version) of each table: the part of a cache key that a sync changes."""
    return tuple((t, (ledger.get(t) or {}).get("lake_version")) for t in sorted(set(tables)))


# ---- cached reads -------------------------------------------------------------------------


@st.cache_data(ttl=CACHE_TTL_S, max_entries=5000, show_spinner=False)
def fetch(url: str, versions: tuple, keys: tuple) -> tuple[list[pd.DataFrame], datetime]:
    """The rows of several queries (`Query.key`s) of the given lake versions, and when they
    were read. One connection, one transaction: the data first (its locks hold off a swap),
    then the ledger, which must still name `versions`."""
    with pool(url).connection() as conn, conn.transaction():
        frames = []
        for _, sql, params in keys:
            with conn.cursor() as cur:
                cur.execute(Q.statement(sql), dict(params))
                frames.append(_frame(cur))
        now = _versions(conn, tuple(t for t, _ in versions))
    if version_key(now, [t for t, _ in versions]) != versions:
        raise VersionMoved
    return frames, datetime.now(UTC)


def ledger() -> dict[str, dict]:
    """The ledger's table rows of every Gold table the dashboard reads, with what the badge
    judges besides: `copy_problem` (a copy dropped, truncated or altered by hand since the
    ledger recorded it), `built_at` (the build time the platform's clock vouches for) and
    `ahead` (the lake holds a newer state: since when, and why it has not landed)."""
    url, _ = _url()
    with _explained(url), pool(url).connection() as conn:
        return badge_rows(conn, Q.ALL_TABLES)


def badge_rows(conn: psycopg.Connection, tables: tuple[str, ...]) -> dict[str, dict]:
    """The badge's facts, read in one snapshot (a publish is never seen half-way, so never
    taken for damage). The dashboard cannot read the lake: the lake's state is the head the
    platform last observed (`platform.lake_heads`)."""
    with one_snapshot(conn):
        rows = _versions(conn, tables)
        facts = read_rds_facts(conn, list(tables))
    for table, row in rows.items():
        row["copy_problem"] = facts.copy_problem(table)
        head = facts.heads.get(table)
        if head is not None and head.state_id == row["lake_version"]:
            row["built_at"] = head.built_at
        else:  # a build is never later than the copy's sync of it
            row["built_at"] = min(
                pd.Timestamp(row["lake_created_at"]).to_pydatetime(),
                pd.Timestamp(row["loaded_at"]).to_pydatetime(),
            )
        row["ahead"] = None
        if head is not None and head.state_id != row["lake_version"]:
            since = facts.lake_moved_at(table, head.state_id)
            waiting = facts.waiting(table, head.state_id)
            refusal = facts.refusals.get(table) if waiting != "pending" else None
            row["ahead"] = {
                "lake_version": head.state_id,
                "since": since,
                "lag": (facts.now or datetime.now(UTC)) - since,
                "waiting": waiting,
                "reason": refusal.reason if refusal else None,
                "until": refusal.until() if refusal else None,
            }
    return rows


def load(queries: list[Q.Query], ledger_rows: dict) -> tuple[list[pd.DataFrame], datetime]:
    """The queries' rows at the lake versions in `ledger_rows`, cached per version."""
    url, _ = _url()
    versions = version_key(ledger_rows, [t for q in queries for t in q.tables])
    with _explained(url, queries[0].name):
        return fetch(url, versions, tuple(q.key for q in queries))


# ---- errors -------------------------------------------------------------------------------


def _url() -> tuple[str, str]:
    try:
        return resolve_url()
    except Exception as exc:  # the embedded server does not start (a full disk, a bad setting)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Unavailable(
            f"Database unavailable: {reason.removeprefix('the serving database is unavailable: ')}"
            f". {COMES_BACK}"
        ) from None


def _probe(url: str) -> str | None:
    """Why a new connection fails now (None: it works and the pool was only busy)."""
    try:
        psycopg.connect(url, connect_timeout=3, application_name="gold-dashboard").close()
    except psycopg.Error as exc:
        return error_reason(exc, url)
    return None


@contextmanager
def _explained(url: str, what: str = "ledger_rows") -> Iterator[None]:
    """Database errors as `Unavailable` with what to do; `VersionMoved` passes through."""
    source = _url()[1]
    shown = redact(url)
    try:
        yield
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as exc:
        reason = error_reason(exc.diag.message_primary or exc, url)
        raise Unavailable(
            f"The Gold tables are not in the serving database yet ({reason}; {source}: "
            f"{shown}). Build and sync them with `{MATERIALIZE}`, then reload this page."
        ) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        reason = error_reason(exc.diag.message_primary or exc, url)
        raise Unavailable(
            f"The dashboard role may not read the Gold tables ({reason}; {source}: {shown}). "
            "Grants are re-applied at every sync: run `uv run goldctl sync --force`."
        ) from None
    except psycopg.errors.QueryCanceled:
        raise Unavailable(
            f"A dashboard query ({what}) took longer than the {STATEMENT_TIMEOUT_S} s statement "
            f"timeout on {shown}. Narrow the filters, or check the serving database's load."
        ) from None
    except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
        reason = _probe(url) if isinstance(exc, PoolTimeout) else error_reason(exc, url)
        if reason is None:
            raise Unavailable(
                f"The serving database is busy: no free connection within {WAIT_S:.0f} s "
                f"(pool of {POOL_MAX}). Reload the page in a moment."
            ) from None
        setting = f"DASHBOARD_RDS_URL={shown}" if source == "DASHBOARD_RDS_URL" else shown
        raise Unavailable(
            f"Database unavailable: the serving database ({setting}) does not answer: "
            f"{reason}. {COMES_BACK}"
        ) from None
