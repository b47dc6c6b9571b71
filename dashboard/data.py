"""The dashboard's data access: one read-only connection to the serving copy, cached results,
and every database failure turned into a message that says what to do (never a password).

`DASHBOARD_RDS_URL` (the `dashboard_reader` login on RDS) or, when unset, the read-only role on
the embedded PostgreSQL under `.local/`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pandas as pd
import psycopg
import streamlit as st

from dashboard import queries as Q
from resources.serving_db import error_reason, libpq_url, redact

CACHE_TTL_S = int(os.environ.get("DASHBOARD_CACHE_TTL_S", "120"))
MATERIALIZE = "uv run dagster asset materialize --select '*'"


class Unavailable(Exception):
    """The dashboard cannot show data; the message says what to do (never a password)."""


# ---- connection and cached queries ------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def resolve_url() -> tuple[str, str]:
    """(libpq URL, what it came from). The embedded default starts the local server if needed."""
    env = os.environ.get("DASHBOARD_RDS_URL", "").strip()
    if env:
        return libpq_url(env), "DASHBOARD_RDS_URL"
    from platform_assets.settings import open_resources

    with open_resources() as resources:
        return resources["serving"].dashboard_url(), "embedded default"


@st.cache_resource(show_spinner=False, validate=lambda conn: not conn.closed)
def connection(url: str) -> psycopg.Connection:
    """One connection per server, shared by sessions (psycopg serialises its use)."""
    conn = psycopg.connect(
        url, autocommit=True, connect_timeout=5, application_name="gold-dashboard"
    )
    conn.execute("SET default_transaction_read_only = on")
    conn.execute("SET statement_timeout = '15s'")
    return conn


def _run(url: str, sql: str, params: dict) -> pd.DataFrame:
    for attempt in (1, 2):
        conn = connection(url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                columns = [d.name for d in cur.description]
                return pd.DataFrame(cur.fetchall(), columns=columns)
        except psycopg.errors.QueryCanceled:
            raise
        except (psycopg.OperationalError, psycopg.InterfaceError):
            connection.clear()  # a dropped connection (server restart, failover): reconnect once
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def fetch(url: str, name: str, sql: str, params: dict) -> tuple[pd.DataFrame, datetime]:
    """Rows of one query and when they were fetched (cached for CACHE_TTL_S)."""
    return _run(url, sql, params), datetime.now(UTC)


def run(query: Q.Query) -> tuple[pd.DataFrame, datetime]:
    """A dashboard query against the serving copy, with errors turned into what to do."""
    try:
        url, source = resolve_url()
    except Exception as exc:  # the embedded server could not start
        raise Unavailable(
            "Cannot start the embedded serving database (DASHBOARD_RDS_URL is not set): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            f"Run `{MATERIALIZE}` to build it, or set DASHBOARD_RDS_URL to the read-only "
            "dashboard role's URL."
        ) from None
    shown = redact(url)
    try:
        return fetch(url, query.name, query.sql, query.params)
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
            f"A dashboard query ({query.name}) took longer than the 15 s statement timeout on "
            f"{shown}. Narrow the filters, or check the serving database's load."
        ) from None
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        reason = error_reason(exc, url)
        setting = f"DASHBOARD_RDS_URL={shown}" if source == "DASHBOARD_RDS_URL" else shown
        raise Unavailable(
            f"Cannot reach the serving database ({setting}): {reason}. Check that the server "
            "is up and the URL is right; for the local default, build and sync the Gold tables "
            f"with `{MATERIALIZE}` (it starts the embedded PostgreSQL)."
        ) from None


def rows(query: Q.Query) -> pd.DataFrame:
    return run(query)[0]
