"""`platform.lake_heads`: the lake states the platform observed, on the platform's own clock.

A row is one episode: an observer (`lake_change_sensor`, `goldctl status`) that lists a table's
current lake state and finds it other than the last one recorded adds a row, stamped with the
serving database's `now()`. Lag is counted from there (`lag_since`): a revert or a rollback to
an old build lags from the moment it was seen, not from when the old build was made, and a lake
clock that is off (a `created_at` in the future or far past) is that table's `clock_skew`,
never a frozen or runaway lag. The row's id names the episode in the sensor's run keys, so a
state that comes back is synced again. The dashboard, which cannot read the lake, reads the
current head here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from platform_assets.lake.tables import LakeTableState, version_time
from platform_assets.serving import ledger
from platform_assets.serving.names import PLATFORM_SCHEMA
from resources.serving_db import one_row

HEADS_LOCK = 0x601E  # advisory lock key: observers record one at a time, in order
SKEW_FUTURE = timedelta(minutes=5)  # built later than the platform saw it by more: skewed
SKEW_PAST = timedelta(days=1)  # built before its own version id's time by more: skewed
OLDEST_PLAUSIBLE = timedelta(days=5 * 365)  # a version id not of ours: older than this: skewed


@dataclass(frozen=True)
class Head:
    id: int
    table_name: str
    state_id: str
    first_seen_at: datetime
    seen_by: str
    lake_created_at: datetime | None  # as the lake claims it
    clock_skew: str | None  # why `lake_created_at` is not trusted, or None

    @property
    def built_at(self) -> datetime:
        """When the state was built, as far as the platform's clock can vouch for it."""
        if self.clock_skew or self.lake_created_at is None:
            return self.first_seen_at
        return min(self.lake_created_at, self.first_seen_at)


def clock_skew(state_id: str, created_at: datetime, now: datetime) -> str | None:
    """Why a state's `created_at` cannot be true on the platform's clock `now`, or None."""
    if created_at > now + SKEW_FUTURE:
        ahead = (created_at - now).total_seconds()
        return (
            f"clock skew: the lake says {state_id} was built at {created_at.isoformat()}, "
            f"{ahead:.0f} s in the future of the platform's clock; lag is counted from when the "
            "platform first saw it"
        )
    built = version_time(state_id)
    floor = built - SKEW_PAST if built else now - OLDEST_PLAUSIBLE
    if created_at < floor:
        return (
            f"clock skew: the lake says {state_id} was built at {created_at.isoformat()}, "
            f"before {'its version id' if built else 'any plausible build'} "
            f"({floor.isoformat()}); lag is counted from when the platform first saw it"
        )
    return None


def record(conn: psycopg.Connection, states: Iterable[LakeTableState], seen_by: str) -> None:
    """Record each state that differs from its table's last recorded head (one transaction;
    nothing before the ledger exists)."""
    states = list(states)
    if not states or not exists(conn):
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (HEADS_LOCK,))
        now = one_row(conn.execute("SELECT now()"))[0]
        last = latest(conn)
        new = [s for s in states if s.table not in last or last[s.table].state_id != s.state_id]
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {PLATFORM_SCHEMA}.lake_heads (table_name, state_id, seen_by, "
                "lake_created_at, clock_skew) VALUES (%s, %s, %s, %s, %s)",
                [
                    (
                        s.table,
                        s.state_id,
                        seen_by,
                        s.created_at,
                        clock_skew(s.state_id, s.created_at, now),
                    )
                    for s in new
                ],
            )


def exists(conn: psycopg.Connection) -> bool:
    return ledger.platform_table_exists(conn, "lake_heads")


def latest(conn: psycopg.Connection) -> dict[str, Head]:
    """Each table's current head ({} before the ledger exists)."""
    if not exists(conn):
        return {}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT DISTINCT ON (table_name) * FROM {PLATFORM_SCHEMA}.lake_heads "
            "ORDER BY table_name, id DESC"
        ).fetchall()
    return {r["table_name"]: Head(**r) for r in rows}


def lag_since(head: Head | None, synced_at: datetime | None, now: datetime) -> datetime:
    """The moment the lake left the state the copy holds: when the platform first saw the
    current head, earlier only for a trusted build time after the copy's last sync (the
    platform was not looking then), never before that sync, never after `now`."""
    if head is None:
        return now
    since = head.first_seen_at
    built = head.lake_created_at
    if head.clock_skew is None and built is not None and (synced_at is None or built > synced_at):
        since = min(since, built)
    if synced_at is not None:
        since = max(since, synced_at)
    return min(since, now)
