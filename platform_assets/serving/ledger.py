"""`platform.sync_ledger`: which lake version each RDS copy holds.

One row per table (`partition_key = ''`) and one per unit it published (a month, or `*` for a
table loaded whole), written in the publish transaction. Besides the lake state, a row records
what was published: the columns (table row) and the unit's `oid:relfilenode` (unit rows), so the
in-sync rule can tell a copy dropped, truncated or altered by hand from the one it published.
The lag check, the alert sensor, `goldctl status` and the dashboard badge all read these rows.
`platform.sync_history` keeps every load; `platform.sync_refusals` the reason a sync of the
current lake state was refused (guard, schema policy), which every surface shows.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

import psycopg
from psycopg import errors, sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from platform_assets.lake.fingerprint import VERSION as CHECKSUM_VERSION
from platform_assets.lake.fingerprint import Segments, fingerprint
from platform_assets.serving import reader
from platform_assets.serving.locks import LockBusy, advisory_holders, set_lock_timeout
from platform_assets.serving.names import PLATFORM_SCHEMA, SCHEMA, STAGE_SCHEMA
from resources.serving_db import one_row

if TYPE_CHECKING:
    from platform_assets.lake.tables import LakeTableState


BOOTSTRAP_LOCK = 0x601D  # advisory lock key serialising DDL of concurrent first runs

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {PLATFORM_SCHEMA};
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE SCHEMA IF NOT EXISTS {STAGE_SCHEMA};
CREATE TABLE IF NOT EXISTS {PLATFORM_SCHEMA}.sync_ledger (
    table_name      text NOT NULL,
    partition_key   text NOT NULL DEFAULT '',
    lake_version    text NOT NULL,
    lake_token      text NOT NULL,
    row_count       bigint NOT NULL,
    fingerprint     text NOT NULL,
    segments        jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    lake_created_at timestamptz NOT NULL,
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    duration_s      double precision NOT NULL,
    rows_per_s      double precision,
    PRIMARY KEY (table_name, partition_key)
);
CREATE TABLE IF NOT EXISTS {PLATFORM_SCHEMA}.sync_history (
    id              bigserial PRIMARY KEY,
    table_name      text NOT NULL,
    partition_key   text NOT NULL DEFAULT '',
    lake_version    text NOT NULL,
    row_count       bigint NOT NULL,
    fingerprint     text NOT NULL,
    lake_created_at timestamptz NOT NULL,
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    duration_s      double precision NOT NULL,
    rows_per_s      double precision
);
ALTER TABLE {PLATFORM_SCHEMA}.sync_ledger
    ADD COLUMN IF NOT EXISTS columns jsonb NOT NULL DEFAULT '[]';
ALTER TABLE {PLATFORM_SCHEMA}.sync_ledger
    ADD COLUMN IF NOT EXISTS relation_id text;
ALTER TABLE {PLATFORM_SCHEMA}.sync_ledger
    ADD COLUMN IF NOT EXISTS lake_columns jsonb NOT NULL DEFAULT '[]';
ALTER TABLE {PLATFORM_SCHEMA}.sync_ledger
    ADD COLUMN IF NOT EXISTS checksums integer NOT NULL DEFAULT 1;
CREATE TABLE IF NOT EXISTS {PLATFORM_SCHEMA}.sync_refusals (
    table_name      text PRIMARY KEY,
    lake_version    text NOT NULL,
    reason          text NOT NULL,
    refused_at      timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE {PLATFORM_SCHEMA}.sync_refusals
    ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'refused';
ALTER TABLE {PLATFORM_SCHEMA}.sync_refusals
    ADD COLUMN IF NOT EXISTS retry_at timestamptz;
CREATE TABLE IF NOT EXISTS {PLATFORM_SCHEMA}.lake_heads (
    id              bigserial PRIMARY KEY,
    table_name      text NOT NULL,
    state_id        text NOT NULL,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    seen_by         text NOT NULL,
    lake_created_at timestamptz,
    clock_skew      text
);
CREATE INDEX IF NOT EXISTS lake_heads_by_table ON {PLATFORM_SCHEMA}.lake_heads (table_name, id);
CREATE TABLE IF NOT EXISTS {PLATFORM_SCHEMA}.copy_owners (
    table_name      text PRIMARY KEY,
    deployment      text NOT NULL,
    lake_location   text NOT NULL,
    since           timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {PLATFORM_SCHEMA}.orphans (
    table_name      text PRIMARY KEY,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    sensor_logged_at timestamptz
);
CREATE TABLE IF NOT EXISTS {PLATFORM_SCHEMA}.sync_locks (table_name text PRIMARY KEY);
"""


@dataclass(frozen=True)
class LedgerRow:
    table_name: str
    partition_key: str
    lake_version: str
    lake_token: str
    row_count: int
    fingerprint: str
    segments: dict
    lake_created_at: datetime
    loaded_at: datetime | None  # None only in a row about to be written (then: the time of
    # its write, `statement_timestamp()`: the publish's, not its transaction's start, which a
    # load's lock transaction opens long before)
    duration_s: float
    rows_per_s: float | None
    columns: list = field(default_factory=list)  # table row: [[name, type], ...] published
    relation_id: str | None = None  # table row: the parent's oid; unit row: "oid:relfilenode"
    lake_columns: list = field(default_factory=list)  # table row: the lake's, in checksum order
    # the fingerprint version `segments` were computed with (rows from before it was kept: 1)
    checksums: int = 1

    @property
    def checksums_current(self) -> bool:
        """False: `segments` cannot be compared with today's checksums (recomputed first)."""
        return self.checksums == CHECKSUM_VERSION


def published_row(
    table: str,
    unit: str,
    state: LakeTableState,
    segments: dict,
    duration_s: float,
    rows_per_s: float | None,
    relation_id: str,
    columns: Iterable[Sequence[str]] = (),
    lake_columns: Iterable[Sequence[str]] = (),
) -> LedgerRow:
    """The ledger row of a table (`unit=''`) or of one unit, as the publish writes it."""
    return LedgerRow(
        table_name=table,
        partition_key=unit,
        lake_version=state.state_id,
        lake_token=state.token,
        row_count=sum(n for n, _ in segments.values()),
        fingerprint=fingerprint(segments),
        segments={k: list(v) for k, v in segments.items()},
        lake_created_at=state.created_at,
        loaded_at=None,  # the publish's time, when written
        duration_s=duration_s,
        rows_per_s=rows_per_s,
        columns=[list(c) for c in columns],
        relation_id=relation_id,
        lake_columns=[list(c) for c in lake_columns],
        checksums=CHECKSUM_VERSION,
    )


def bootstrap(conn: psycopg.Connection, dashboard_role: str) -> None:
    """Create schemas, ledger and the read-only dashboard role (idempotent, race-free).

    Done once per version of this setup (a comment on schema `platform` records it), and
    checked once per process and database: later calls cost nothing. The first call of a
    process reads one comment and takes no lock, so nobody holding the bootstrap lock can stall
    a sync; an upgrade waits for it at most BOOTSTRAP_WAIT_S and names the holder."""
    info = conn.info
    done = (info.host, info.port, info.dbname, dashboard_role)
    if done in _BOOTSTRAPPED:
        return
    _bootstrap_run(conn, dashboard_role)
    _BOOTSTRAPPED.add(done)


_BOOTSTRAPPED: set[tuple] = set()  # (host, port, database, role) set up by this process


def _bootstrap_run(conn: psycopg.Connection, dashboard_role: str) -> None:
    database = conn.info.dbname
    marker = _bootstrap_marker(dashboard_role, database)
    if _bootstrapped(conn) == marker:
        return
    try:
        with conn.transaction():
            set_lock_timeout(conn, BOOTSTRAP_WAIT_S * 1000)
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (BOOTSTRAP_LOCK,))
            conn.execute(DDL)
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (dashboard_role,)
            ).fetchone()
            if not exists:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                        sql.Identifier(dashboard_role)
                    )
                )
            for statement in reader.grants(dashboard_role):
                conn.execute(statement)
            for statement in reader.lockdown(dashboard_role, database):
                # what this login may not change stays as it was (`reader.exposures` tells)
                with contextlib.suppress(errors.InsufficientPrivilege), conn.transaction():
                    conn.execute(statement)
            conn.execute(
                sql.SQL(f"COMMENT ON SCHEMA {PLATFORM_SCHEMA} IS {{}}").format(sql.Literal(marker))
            )
    except errors.LockNotAvailable:
        raise LockBusy(
            f"the ledger's setup lock is held by {advisory_holders(conn, BOOTSTRAP_LOCK)}; "
            f"gave up after {BOOTSTRAP_WAIT_S} s"
        ) from None


BOOTSTRAP_WAIT_S = 30


def _bootstrap_marker(dashboard_role: str, database: str) -> str:
    setup = [*reader.grants(dashboard_role), *reader.lockdown(dashboard_role, database)]
    text = "\n".join([DDL, *(s.as_string(None) for s in setup)])
    return f"gold-platform bootstrap {hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _bootstrapped(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
        (PLATFORM_SCHEMA,),
    ).fetchone()
    return row[0] if row else None


def platform_table_exists(conn: psycopg.Connection, table: str) -> bool:
    """Whether the platform's `table` exists yet (the first sync creates them all; known
    without asking once this process set the database up)."""
    info = conn.info
    if any(done[:3] == (info.host, info.port, info.dbname) for done in _BOOTSTRAPPED):
        return True
    found = conn.execute("SELECT to_regclass(%s)", (f"{PLATFORM_SCHEMA}.{table}",))
    return one_row(found)[0] is not None


def read(conn: psycopg.Connection, table: str, partition_key: str = "") -> LedgerRow | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT * FROM {PLATFORM_SCHEMA}.sync_ledger "
            "WHERE table_name = %s AND partition_key = %s",
            (table, partition_key),
        ).fetchone()
    return LedgerRow(**row) if row else None


_UPSERT = f"""
INSERT INTO {PLATFORM_SCHEMA}.sync_ledger (table_name, partition_key, lake_version, lake_token,
    row_count, fingerprint, segments, lake_created_at, loaded_at, duration_s, rows_per_s,
    columns, relation_id, lake_columns, checksums)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, statement_timestamp(), %s, %s, %s, %s, %s, %s)
ON CONFLICT (table_name, partition_key) DO UPDATE SET
    lake_version = EXCLUDED.lake_version, lake_token = EXCLUDED.lake_token,
    row_count = EXCLUDED.row_count, fingerprint = EXCLUDED.fingerprint,
    segments = EXCLUDED.segments, lake_created_at = EXCLUDED.lake_created_at,
    loaded_at = EXCLUDED.loaded_at, duration_s = EXCLUDED.duration_s,
    rows_per_s = EXCLUDED.rows_per_s, columns = EXCLUDED.columns,
    relation_id = EXCLUDED.relation_id, lake_columns = EXCLUDED.lake_columns,
    checksums = EXCLUDED.checksums
"""
_HISTORY = f"""
INSERT INTO {PLATFORM_SCHEMA}.sync_history (table_name, partition_key, lake_version, row_count,
    fingerprint, lake_created_at, duration_s, rows_per_s, loaded_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, statement_timestamp())
"""


def write(conn: psycopg.Connection, *rows: LedgerRow) -> None:
    """Upsert the current rows and append history (inside the publish transaction; batched, so
    a publish of 120 months costs a few round trips, not hundreds, while it holds its locks)."""
    with conn.cursor() as cur:
        cur.executemany(
            _UPSERT,
            [
                (
                    r.table_name,
                    r.partition_key,
                    r.lake_version,
                    r.lake_token,
                    r.row_count,
                    r.fingerprint,
                    Jsonb(r.segments),
                    r.lake_created_at,
                    r.duration_s,
                    r.rows_per_s,
                    Jsonb(r.columns),
                    r.relation_id,
                    Jsonb(r.lake_columns),
                    r.checksums,
                )
                for r in rows
            ],
        )
        cur.executemany(
            _HISTORY,
            [
                (
                    r.table_name,
                    r.partition_key,
                    r.lake_version,
                    r.row_count,
                    r.fingerprint,
                    r.lake_created_at,
                    r.duration_s,
                    r.rows_per_s,
                )
                for r in rows
            ],
        )


def upgrade_checksums(conn: psycopg.Connection, table: str, segments: dict[str, dict]) -> None:
    """Rewrite the checksums of rows (by partition key, '' the table row) that an older
    fingerprint version computed, with today's, leaving what they record as published alone.
    Only for rows whose live copy was just found equal to the lake under today's algorithm."""
    conn.cursor().executemany(
        f"UPDATE {PLATFORM_SCHEMA}.sync_ledger SET segments = %s, fingerprint = %s, checksums = %s "
        "WHERE table_name = %s AND partition_key = %s",
        [
            (Jsonb({k: list(v) for k, v in segs.items()}), fingerprint(segs), CHECKSUM_VERSION)
            + (table, key)
            for key, segs in segments.items()
        ],
    )


def loaded_at(conn: psycopg.Connection, table: str) -> datetime | None:
    """When `table`'s copy was last published (None: never): did a sync publish since?"""
    row = conn.execute(
        f"SELECT loaded_at FROM {PLATFORM_SCHEMA}.sync_ledger "
        "WHERE table_name = %s AND partition_key = ''",
        (table,),
    ).fetchone()
    return row[0] if row else None


def read_units(conn: psycopg.Connection, table: str) -> dict[str, LedgerRow]:
    """The unit rows of a table, by unit key ('YYYY-MM', or '*' for a table loaded whole);
    {} before the first sync created the ledger."""
    if not platform_table_exists(conn, "sync_ledger"):
        return {}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT * FROM {PLATFORM_SCHEMA}.sync_ledger "
            "WHERE table_name = %s AND partition_key <> ''",
            (table,),
        ).fetchall()
    return {r["partition_key"]: LedgerRow(**r) for r in rows}


def read_partitions(conn: psycopg.Connection, table: str) -> dict[str, LedgerRow]:
    """The months a month-partitioned copy holds, by 'YYYY-MM'."""
    return {k: r for k, r in read_units(conn, table).items() if k != "*"}


def read_everything(
    conn: psycopg.Connection, tables: list[str] | None = None
) -> dict[str, tuple[LedgerRow, dict[str, LedgerRow]]]:
    """Every table's (or only `tables`') row and unit rows in one query ({} before the first
    sync)."""
    if not platform_table_exists(conn, "sync_ledger"):
        return {}
    found: dict[str, tuple[LedgerRow | None, dict[str, LedgerRow]]] = {}
    query, params = f"SELECT * FROM {PLATFORM_SCHEMA}.sync_ledger", ()
    if tables is not None:
        query, params = f"{query} WHERE table_name = ANY(%s)", (list(tables),)
    with conn.cursor(row_factory=dict_row) as cur:
        for r in cur.execute(query, params):
            row = LedgerRow(**r)
            table_row, units = found.get(row.table_name, (None, {}))
            if row.partition_key:
                units[row.partition_key] = row
            else:
                table_row = row
            found[row.table_name] = (table_row, units)
    return {t: (row, units) for t, (row, units) in found.items() if row is not None}


def delete_units(conn: psycopg.Connection, table: str, keep: set[str]) -> None:
    """Forget the unit rows of `table` except `keep` (inside the publish transaction)."""
    conn.execute(
        f"DELETE FROM {PLATFORM_SCHEMA}.sync_ledger WHERE table_name = %s AND partition_key <> '' "
        "AND NOT partition_key = ANY(%s)",
        (table, sorted(keep)),
    )


def recorded_segments(row: LedgerRow | None) -> Segments | None:
    """A unit row's segments typed as the lake's checksums are (None: no row)."""
    if row is None:
        return None
    return {k: (int(v[0]), int(v[1])) for k, v in row.segments.items()}


def unit_behind(row: LedgerRow | None, expected: Segments | None) -> bool:
    """The one "behind" rule: a unit's ledger row does not hold the lake's segments for it."""
    return recorded_segments(row) != expected


def units_behind(rows: Mapping[str, LedgerRow], expected: Mapping[str, Segments]) -> list[str]:
    """The unit keys (of either side) that are behind by `unit_behind`, sorted: a table's units
    judged in one call."""
    keys = set(rows) | set(expected)
    return sorted(k for k in keys if unit_behind(rows.get(k), expected.get(k)))


def outdated_keys(rows: Mapping[str, LedgerRow]) -> set[str]:
    """The keys of `rows` whose checksums an older fingerprint version computed."""
    return {key for key, row in rows.items() if not row.checksums_current}


def stale_units(rows: Mapping[str, LedgerRow], expected: Mapping[str, Segments]) -> set[str]:
    """The units the ledger says to reload: behind the lake, or with checksums of an older
    fingerprint version (they differ from the lake's: `checksum_upgrade` found them so)."""
    return set(units_behind(rows, expected)) | outdated_keys(rows)


class Refusal(NamedTuple):
    """Why the sync of a lake state has not landed: `refused` (data, policy, guard: not retried
    until the lake changes or `goldctl sync` is run) or `failing` (transient: retried at
    `retry_at`)."""

    lake_version: str
    reason: str
    kind: str = "refused"
    at: datetime | None = None
    retry_at: datetime | None = None

    def until(self) -> str:
        """Until when no sync comes, one phrase."""
        if self.kind == "refused":
            # true of every refusal: a guard yields to --force, a policy or bad data only to a
            # new lake state, a full volume to room made and a sync asked for
            return "until the lake changes or `goldctl sync` is run (--force overrides a guard)"
        if self.retry_at is None:
            return "until the next attempt"
        return f"until the next attempt at {self.retry_at:%Y-%m-%d %H:%M:%S} UTC"


def read_refusals(conn: psycopg.Connection) -> dict[str, Refusal]:
    """table -> the last refused or failed sync of a lake state, until one publishes."""
    if not platform_table_exists(conn, "sync_refusals"):
        return {}
    rows = conn.execute(
        "SELECT table_name, lake_version, reason, kind, refused_at, retry_at "
        f"FROM {PLATFORM_SCHEMA}.sync_refusals"
    )
    return {t: Refusal(*rest) for t, *rest in rows}


def record_refusal(
    conn: psycopg.Connection,
    table: str,
    lake_version: str,
    reason: str,
    kind: str = "refused",
    retry_at: datetime | None = None,
) -> None:
    conn.execute(
        f"""
        INSERT INTO {PLATFORM_SCHEMA}.sync_refusals
            (table_name, lake_version, reason, kind, retry_at)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (table_name) DO UPDATE SET lake_version = EXCLUDED.lake_version,
            reason = EXCLUDED.reason, kind = EXCLUDED.kind, retry_at = EXCLUDED.retry_at,
            refused_at = now()
        """,
        (table, lake_version, reason, kind, retry_at),
    )


def schedule_retry(
    conn: psycopg.Connection, table: str, lake_version: str, retry_at: datetime
) -> None:
    """The sensor's next attempt at a failing sync, where every surface reads it."""
    conn.execute(
        f"UPDATE {PLATFORM_SCHEMA}.sync_refusals SET retry_at = %s "
        "WHERE table_name = %s AND lake_version = %s AND kind = 'failing'",
        (retry_at, table, lake_version),
    )


@contextlib.contextmanager
def one_snapshot(conn: psycopg.Connection) -> Iterator[None]:
    """Every read inside sees one snapshot of the database (REPEATABLE READ, read-only): the
    ledger, the catalog and the refusals a publish changes together are never seen half-way."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        with conn.transaction():  # inside a caller's transaction: its snapshot rules
            yield
        return
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def clear_refusal(conn: psycopg.Connection, table: str) -> None:
    conn.execute(f"DELETE FROM {PLATFORM_SCHEMA}.sync_refusals WHERE table_name = %s", (table,))
