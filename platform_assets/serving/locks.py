"""The sync's locks: ones only the loader can take, and waits that end naming who holds them.

A table's sync lock is a row of `platform.sync_locks` locked `FOR UPDATE` in a transaction on
the sync run's own connection, held for the whole load (`exclusive`); no-op syncs and the
schedule's checks hold it `FOR SHARE` (`shared`). Locking a row needs UPDATE on the table,
which only the loader has: the read-only dashboard role (or any reader) cannot take or hold it,
unlike an advisory lock, which every role may take. The wait is bounded: past it the sync fails
as transient and the message names the holder (another sync: its pid, user and how long it has
held the lock). A sync process that dies drops its connection and with it the lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import psycopg
from psycopg import errors, sql

from platform_assets.serving.errors import KEEPS_SERVING, SyncTransient
from platform_assets.serving.names import (
    PLATFORM_SCHEMA,
    CopyNames,
    copy_names,
    lock_application,
)

if TYPE_CHECKING:
    from resources.dagster_resources import ServingDatabase


NOTHING_DONE = f"Nothing was published; {KEEPS_SERVING}, and a retry can succeed"


class LockBusy(SyncTransient):
    """A lock the sync needs was held past the wait; a later attempt can get it."""


def lock_timeout(ms: float, local: bool = True) -> sql.Composed:
    """`SET [LOCAL] lock_timeout`: the one way the sync bounds a lock wait (0: wait forever);
    `local`: for the transaction only, else for the session."""
    scope = sql.SQL("LOCAL " if local else "")
    return sql.SQL("SET {}lock_timeout = {}").format(scope, sql.Literal(f"{int(ms)}ms"))


def set_lock_timeout(conn: psycopg.Connection, ms: float, local: bool = True) -> None:
    conn.execute(lock_timeout(ms, local))


def holders(conn: psycopg.Connection, where: sql.SQL, params: tuple) -> str:
    """Who holds a lock, as one phrase: 'pid 123 (user loader, app ..., for 42 s)'."""
    rows = conn.execute(
        sql.SQL(
            "SELECT a.pid, a.usename, a.application_name, "
            "extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start))::int "
            "FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid() AND ({})"
        ).format(where),
        params,
    ).fetchall()
    if not rows:
        return "a session that has ended since"
    return "; ".join(
        f"pid {pid} (user {user}, application {app or '-'}, for {age} s)"
        for pid, user, app, age in rows
    )


def advisory_holders(conn: psycopg.Connection, key: int) -> str:
    """The sessions holding the advisory lock `key` (a bigint key: classid 0, objid key)."""
    return holders(
        conn,
        sql.SQL(
            "a.pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = 0 AND objid = %s AND objsubid = 1)"
        ),
        (key,),
    )


def _busy(conn: psycopg.Connection, table: str, wait_s: float) -> LockBusy:
    """The bounded wait's failure, naming the sync that holds the lock (`conn`: idle)."""
    who = holders(conn, sql.SQL("a.application_name = %s"), (lock_application(table),))
    return LockBusy(
        f"gold.{table}'s sync lock is held by {who}; gave up after {wait_s:.0f} s "
        f"(another sync of this table is running or stuck). {NOTHING_DONE}",
        table=table,
    )


@contextlib.contextmanager
def table_lock(db: ServingDatabase, table: str, wait_s: float) -> Iterator[psycopg.Connection]:
    """Hold `table`'s sync lock on a connection of its own for the block (tests and tools that
    stand in for a sync); yields that connection."""
    with db.connect(autocommit=True) as conn, exclusive(conn, copy_names(table), wait_s):
        yield conn


def _hold(
    conn: psycopg.Connection,
    table: str,
    wait_s: float,
    mode: sql.SQL,
    first: Sequence[sql.Composable] = (),
) -> None:
    """Inside a transaction: lock the table's row of `sync_locks` in `mode`, the wait bounded.
    One round trip: `first`, the row made sure of, the wait bounded, the row locked, the bound
    lifted."""
    locks, name = sql.Identifier(PLATFORM_SCHEMA, "sync_locks"), sql.Literal(table)
    statements = [
        *first,
        sql.SQL("INSERT INTO {} (table_name) VALUES ({}) ON CONFLICT DO NOTHING").format(
            locks, name
        ),
        lock_timeout(max(1, int(wait_s * 1000))),
        sql.SQL("SELECT 1 FROM {} WHERE table_name = {} {}").format(locks, name, mode),
        lock_timeout(0),
    ]
    try:
        conn.execute(sql.SQL(";\n").join(statements))
    except errors.LockNotAvailable:
        raise LockBusy(
            f"gold.{table}'s sync lock is held by a sync; gave up after {wait_s:.0f} s",
            table=table,
        ) from None


def hold_shared(conn: psycopg.Connection, table: str, wait_s: float) -> None:
    """Inside a transaction: no sync of `table` runs until it ends (shared with other
    holders, exclusive against a sync's `exclusive`); the wait is bounded like the sync's."""
    _hold(conn, table, wait_s, sql.SQL("FOR SHARE"))


@contextlib.contextmanager
def exclusive(conn: psycopg.Connection, names: CopyNames, wait_s: float) -> Iterator[None]:
    """A transaction on `conn` (the run's own) holding `table`'s sync lock for itself: a
    sync's load. What the COPY streams must see commits on those streams; what the load does
    on `conn` commits when the lock ends. The connection says who holds the lock
    (`application_name`), a server-wide idle-in-transaction timeout does not end it, and it
    ends with the connection (a process that dies)."""
    first = [
        sql.SQL("SET LOCAL application_name = {}").format(sql.Literal(names.lock_application)),
        sql.SQL("SET LOCAL idle_in_transaction_session_timeout = 0"),
    ]
    with _locked(conn, names.table, wait_s, sql.SQL("FOR UPDATE"), first):
        yield


@contextlib.contextmanager
def shared(conn: psycopg.Connection, table: str, wait_s: float) -> Iterator[None]:
    """A transaction on `conn` (the run's own) in which no sync of `table` runs: the lock held
    shared (`hold_shared`); past the wait, `LockBusy` names the holder as `exclusive` does."""
    with _locked(conn, table, wait_s, sql.SQL("FOR SHARE")):
        yield


@contextlib.contextmanager
def _locked(
    conn: psycopg.Connection,
    table: str,
    wait_s: float,
    mode: sql.SQL,
    first: Sequence[sql.Composable] = (),
) -> Iterator[None]:
    """A transaction holding the lock in `mode`; a wait past `wait_s` names the holder."""
    acquired = False
    try:
        with conn.transaction():
            _hold(conn, table, wait_s, mode, first)
            acquired = True
            yield
    except LockBusy:
        if acquired:
            raise
        raise _busy(conn, table, wait_s) from None
