"""Room on the serving database's volume: a sync that would fill it is refused, with numbers.

PostgreSQL that cannot write WAL stops (PANIC) and cannot start again until space is freed, so a
full volume would cost the old copy too. Before staging, the sync compares what its units need
(their size, plus the WAL that writing them produces, in whole WAL segments and one more) with
what the volume has left, as far as the server can tell:

- the server's own data folder, when this host sees it (the embedded server, or a local one):
  the free space of its file system, and of `pg_wal`'s if that is elsewhere;
- `RDS_STORAGE_GB`, the volume's allocated size (RDS does not expose its disk): that less every
  database on the server and the WAL (`pg_ls_waldir`, when the login may read it).

The smaller wins; with neither the check cannot judge and lets the sync go (the server itself is
the last fence). A unit's size is its live child's size, else the copy's bytes per row times its
rows, else an estimate from the lake's column types.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import errors

from platform_assets.serving.names import SCHEMA
from resources.serving_db import one_row

if TYPE_CHECKING:
    from collections.abc import Sequence

    from platform_assets.serving.catalog import Columns
    from platform_assets.serving.names import CopyNames
    from platform_assets.serving.units import Unit


GIB = 1024**3
INDEX_FACTOR = 1.5  # a new copy's indexes next to its heap, for the estimate from types
ROW_OVERHEAD = 28  # tuple header and line pointer
TYPE_BYTES = {"boolean": 1, "smallint": 2, "integer": 4, "bigint": 8, "date": 4, "real": 4}
DEFAULT_TYPE_BYTES = 16  # text, numeric, timestamps and the rest


@dataclass(frozen=True)
class Room:
    free_bytes: int | None  # None: nothing tells
    source: str  # where free_bytes comes from, for the message
    wal_segment_bytes: int

    def needed(self, staged_bytes: int) -> int:
        """`staged_bytes` written, plus their WAL in whole segments and one segment more."""
        seg = self.wal_segment_bytes
        return staged_bytes + (math.ceil(staged_bytes / seg) + 1) * seg

    def to_dict(self) -> dict:
        return {
            "volume_free_bytes": self.free_bytes,
            "volume_source": self.source,
            "wal_segment_bytes": self.wal_segment_bytes,
        }


def room(conn: psycopg.Connection, storage_gb: float | None) -> Room:
    # one round trip: the WAL segment size, and the data folder with the postmaster's start
    # (pg_settings shows data_directory only to roles that may read it: NULL for the others)
    seg, directory, started = one_row(
        conn.execute(
            "SELECT (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'), "
            "(SELECT setting FROM pg_settings WHERE name = 'data_directory'), "
            "extract(epoch FROM pg_postmaster_start_time())"
        )
    )
    found: list[tuple[int, str]] = []
    local = _local_data_directory(directory, started)
    if local is not None:
        free = min(_free(local), _free(local / "pg_wal"))
        found.append((free, f"the file system of {local}"))
    if storage_gb:
        used = conn.execute(  # the databases this login may measure (rdsadmin's is small)
            "SELECT coalesce(sum(pg_database_size(oid)) "
            "FILTER (WHERE has_database_privilege(oid, 'CONNECT')), 0)::bigint FROM pg_database"
        )
        used = int(one_row(used)[0]) + (_wal_bytes(conn) or 0)
        found.append(
            (int(storage_gb * GIB) - used, f"RDS_STORAGE_GB={storage_gb:g} less what is used")
        )
    seg = int(seg)
    if not found:
        return Room(None, "unknown (set RDS_STORAGE_GB)", seg)
    free, source = min(found)
    return Room(max(free, 0), source, seg)


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _wal_bytes(conn: psycopg.Connection) -> int | None:
    try:
        with conn.transaction():
            return int(
                one_row(conn.execute("SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()"))[0]
            )
    except errors.InsufficientPrivilege:
        return None


def _local_data_directory(directory: str | None, started: float) -> Path | None:
    """The server's data folder (`directory`, None when the login may not read it) if it is on
    this host: its postmaster, started at `started` (epoch), runs here."""
    if directory is None:
        return None
    path = Path(directory)
    with contextlib.suppress(OSError, ValueError, IndexError, TypeError):
        import psutil

        pid = int((path / "postmaster.pid").read_text().splitlines()[0])
        if abs(psutil.Process(pid).create_time() - float(started)) < 5:
            return path
    return None


def staged_bytes(
    conn: psycopg.Connection, parent: str, units: Sequence[Unit], columns: Columns
) -> int:
    """Bytes `units` will take once staged (`parent`: the live copy, as SQL text): see the
    module docstring."""
    children = [u.child.name for u in units]
    total_bytes, total_rows, live = one_row(  # one round trip
        conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0), "
            "coalesce(sum(c.reltuples) FILTER (WHERE c.reltuples > 0), 0), "
            "(SELECT coalesce(jsonb_object_agg(c.relname, pg_total_relation_size(c.oid)), '{}') "
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            " WHERE n.nspname = %s AND c.relname = ANY(%s)) "
            "FROM pg_partition_tree(to_regclass(%s)) t JOIN pg_class c ON c.oid = t.relid",
            (SCHEMA, children, parent),
        )
    )
    if total_rows:
        per_row = float(total_bytes) / float(total_rows)
    else:
        width = sum(TYPE_BYTES.get(t, DEFAULT_TYPE_BYTES) for _, t in columns) + ROW_OVERHEAD
        per_row = width * INDEX_FACTOR
    return sum(
        int(live.get(u.child.name) or 0) or int(per_row * sum(n for n, _ in u.expected.values()))
        for u in units
    )


def require_room(
    conn: psycopg.Connection,
    storage_gb: float | None,
    names: CopyNames,
    units: Sequence[Unit],
    columns: Columns,
) -> None:
    """Refuse (SyncRefused, with the numbers) a staging the volume cannot hold. Measured in a
    savepoint rolled back after it: a load runs in the sync lock's transaction, and the sizes'
    locks on the live copy would last the whole load (a hand-run ALTER would wait for it, and
    every reader behind that ALTER)."""
    from platform_assets.serving.errors import KEEPS_SERVING, SyncRefused

    with conn.transaction(force_rollback=True):
        have = room(conn, storage_gb)
        if have.free_bytes is None:
            return
        data = staged_bytes(conn, names.live_text, units, columns)
    table = names.table
    needed = have.needed(data)
    if needed <= have.free_bytes:
        return
    raise SyncRefused(
        f"refusing to sync gold.{table}: staging {len(units)} unit(s) needs {human(needed)} "
        f"({human(data)} of data and its WAL, in {human(have.wal_segment_bytes)} segments) but "
        f"the serving database's volume has {human(have.free_bytes)} left ({have.source}); "
        f"{KEEPS_SERVING}. Free space or grow the volume, then sync again",
        {"needed_bytes": needed, "staged_bytes": data, **have.to_dict()},
        table=table,
    )


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
