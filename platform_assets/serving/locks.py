"""The sync's locks: ones only the loader can take, and waits that end naming who holds them.

A table's sync lock is a row of `platform.sync_locks` locked `FOR UPDATE` on a connection of its
own, held for the whole sync. Locking a row needs UPDATE on the table, which only the loader has:
the read-only dashboard role (or any reader) cannot take or hold it, unlike an advisory lock,
which every role may take. The wait is bounded: past it the sync fails as transient and the
message names the holder (another sync: its pid, user and how long it has held the lock).
A sync process that dies drops its connection and with it the lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
from psycopg import errors, sql

from platform_assets.serving.errors import KEEPS_SERVING, SyncTransient
from platform_assets.serving.names import PLATFORM_SCHEMA, lock_application

if TYPE_CHECKING:
    from resources.dagster_resources import ServingDatabase


NOTHING_DONE = f"Nothing was published; {KEEPS_SERVING}, and a retry can succeed"


class LockBusy(SyncTransient):
    """A lock the sync needs was held past the wait; a later attempt can get it."""


def set_lock_timeout(conn: psycopg.Connection, ms: float, local: bool = True) -> None:
    """`SET [LOCAL] lock_timeout`: the one way the sync bounds a lock wait (0: wait forever);
    `local`: for the transaction only, else for the session."""
    scope = sql.SQL("LOCAL " if local else "")
    conn.execute(sql.SQL("SET {}lock_timeout = {}").format(scope, sql.Literal(f"{int(ms)}ms")))


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


@contextlib.contextmanager
def table_lock(db: ServingDatabase, table: str, wait_s: float) -> Iterator[psycopg.Connection]:
    """Hold `table`'s sync lock for the block; yields the lock's connection (`check` it before
    publishing: a lost lock connection means another sync may run)."""
    application = lock_application(table)
    conn = db.connect(autocommit=True, application_name=application)
    try:
        conn.execute(
            f"INSERT INTO {PLATFORM_SCHEMA}.sync_locks (table_name) VALUES (%s) "
            "ON CONFLICT DO NOTHING",
            (table,),
        )
        conn.autocommit = False
        # held for the whole sync: a server-wide idle-in-transaction timeout must not end it
        conn.execute("SET idle_in_transaction_session_timeout = 0")
        set_lock_timeout(conn, max(1, int(wait_s * 1000)), local=False)
        try:
            conn.execute(
                f"SELECT 1 FROM {PLATFORM_SCHEMA}.sync_locks WHERE table_name = %s FOR UPDATE",
                (table,),
            )
        except errors.LockNotAvailable:
            conn.rollback()
            conn.autocommit = True
            who = holders(conn, sql.SQL("a.application_name = %s"), (application,))
            raise LockBusy(
                f"gold.{table}'s sync lock is held by {who}; gave up after {wait_s:.0f} s "
                f"(another sync of this table is running or stuck). {NOTHING_DONE}",
                table=table,
            ) from None
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.close()  # ends the transaction: the lock is free


def hold_shared(conn: psycopg.Connection, table: str, wait_s: float) -> None:
    """Inside a transaction: no sync of `table` runs until it ends (shared with other holders,
    exclusive against a sync's `table_lock`); the wait is bounded like the sync's."""
    conn.execute(
        f"INSERT INTO {PLATFORM_SCHEMA}.sync_locks (table_name) VALUES (%s) ON CONFLICT DO NOTHING",
        (table,),
    )
    set_lock_timeout(conn, max(1, int(wait_s * 1000)))
    try:
        conn.execute(
            f"SELECT 1 FROM {PLATFORM_SCHEMA}.sync_locks WHERE table_name = %s FOR SHARE", (table,)
        )
    except errors.LockNotAvailable:
        raise LockBusy(
            f"gold.{table}'s sync lock is held by a sync; gave up after {wait_s:.0f} s",
            table=table,
        ) from None
    set_lock_timeout(conn, 0)


def check(conn: psycopg.Connection, table: str) -> None:
    """Raise `LockBusy` if the lock's connection was lost (the lock went with it)."""
    try:
        conn.execute("SELECT 1")
    except psycopg.Error:
        raise LockBusy(
            f"gold.{table}'s sync lock was lost (its connection ended). {NOTHING_DONE}",
            table=table,
        ) from None
