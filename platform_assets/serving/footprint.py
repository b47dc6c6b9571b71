"""What the serving copies cost in PostgreSQL storage, and whether their next syncs still fit.

- A copy's size is `pg_total_relation_size` (heap, indexes, TOAST) summed over its partition tree:
  a partitioned parent has no storage of its own, its months do.
- The headroom of its next sync is the space staging needs next to the live copy until the publish
  drops the old units: at worst (a schema change, a forced reload, a repair of the whole copy)
  every unit is staged at once, so the copy's size again. A usual sync of a month-partitioned copy
  stages only the changed months. A copy not loaded yet counts 0.
- The budget, `RDS_STORAGE_BUDGET_GB` (default 20 GB, the smallest gp RDS volume, fractions
  allowed), is for this database: `fits_storage_budget` warns when the database's size plus the
  headroom of every copy (a full platform build syncs them all at once) passes 80 % of it, or
  when that headroom with its WAL does not fit in what the volume has left (disk.py: the data
  folder's file system when this host sees it, `RDS_STORAGE_GB` less what the server uses).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import psycopg

from platform_assets.serving import disk
from platform_assets.serving.disk import Room, human
from platform_assets.serving.names import qualified
from resources.serving_db import one_row

if TYPE_CHECKING:
    import dagster as dg

GIB = 1024**3
WARN_SHARE = 0.8
CHECK_NAME = "fits_storage_budget"
CHECK_DESCRIPTION = (
    "The serving database plus what every copy's next sync stages stays under 80 % of "
    "RDS_STORAGE_BUDGET_GB, and those syncs with their WAL fit in what the volume has left "
    "(WARN otherwise)."
)


@dataclass(frozen=True)
class CopyFootprint:
    table: str
    rds_bytes: int  # table + indexes + TOAST, all partitions
    sync_headroom_bytes: int  # extra space the next sync stages before its swap
    partitions: int


@dataclass(frozen=True)
class StorageReport:
    budget_bytes: int
    database_bytes: int
    headroom_bytes: int  # every copy's next sync at once
    copies: dict[str, CopyFootprint]
    room: Room  # what the volume has left, as far as the server can tell

    @property
    def syncs_need_bytes(self) -> int:
        """Every copy's next sync at once, with the WAL it writes (what the volume must hold)."""
        return self.room.needed(self.headroom_bytes)

    @property
    def fits_volume(self) -> bool:
        return self.room.free_bytes is None or self.syncs_need_bytes <= self.room.free_bytes

    @property
    def peak_bytes(self) -> int:
        return self.database_bytes + self.headroom_bytes

    @property
    def peak_share(self) -> float:
        return self.peak_bytes / self.budget_bytes if self.budget_bytes else float("inf")

    @property
    def fits(self) -> bool:
        return self.peak_share <= WARN_SHARE and self.fits_volume

    def to_dict(self) -> dict:
        return {
            "budget_bytes": self.budget_bytes,
            "database_bytes": self.database_bytes,
            "headroom_bytes": self.headroom_bytes,
            "peak_bytes": self.peak_bytes,
            "peak_share": round(self.peak_share, 4),
            "fits": self.fits,
            "syncs_need_bytes": self.syncs_need_bytes,
            **self.room.to_dict(),
            "copies": {t: asdict(c) for t, c in self.copies.items()},
        }


def copy_footprint(conn: psycopg.Connection, table: str) -> CopyFootprint:
    return copy_footprints(conn, [table])[table]


def copy_footprints(conn: psycopg.Connection, tables: list[str]) -> dict[str, CopyFootprint]:
    """Every copy's footprint in one query (a check or `goldctl status` at 300 tables would
    otherwise ask 300 times)."""
    tables = list(tables)
    # every copy is a partitioned parent (no storage of its own) over its units; a month unit
    # has a range bound, the unit of a table loaded whole is the DEFAULT partition
    rows = conn.execute(
        "SELECT n.name, coalesce(sum(pg_total_relation_size(t.relid)), 0), "
        "count(t.relid) FILTER (WHERE t.level > 0 "
        "AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT') "
        "FROM unnest(%(names)s::text[], %(relations)s::text[]) AS n(name, relation) "
        "LEFT JOIN LATERAL pg_partition_tree(to_regclass(n.relation)) AS t ON true "
        "LEFT JOIN pg_class c ON c.oid = t.relid GROUP BY n.name",
        {"names": tables, "relations": [qualified(t) for t in tables]},
    ).fetchall()
    sizes = {name: (int(total), int(months)) for name, total, months in rows}
    # the worst case of the next sync's headroom: every unit staged beside the live copy
    return {t: CopyFootprint(t, sizes[t][0], sizes[t][0], sizes[t][1]) for t in tables}


def storage_report(
    conn: psycopg.Connection,
    tables: list[str],
    budget_gb: float,
    storage_gb: float | None = None,
) -> StorageReport:
    copies = copy_footprints(conn, tables)
    database = one_row(conn.execute("SELECT pg_database_size(current_database())"))[0]
    return StorageReport(
        budget_bytes=int(budget_gb * GIB),
        database_bytes=int(database),
        headroom_bytes=sum(c.sync_headroom_bytes for c in copies.values()),
        copies=copies,
        room=disk.room(conn, storage_gb),
    )


def asset_metadata(conn: psycopg.Connection, table: str) -> dict:
    """The RDS asset's size and its next sync's headroom (shown with every materialization)."""
    copy = copy_footprint(conn, table)
    return {
        "rds_bytes": copy.rds_bytes,
        "rds_size": human(copy.rds_bytes),
        "sync_headroom_bytes": copy.sync_headroom_bytes,
    }


def budget_check(
    conn: psycopg.Connection,
    key: dg.AssetKey,
    tables: list[str],
    budget_gb: float,
    storage_gb: float | None = None,
) -> dg.AssetCheckResult:
    """`fits_storage_budget` for one RDS asset (same verdict for all: one database)."""
    import dagster as dg  # goldctl status reads the report without loading Dagster

    report = storage_report(conn, tables, budget_gb, storage_gb)
    copy = report.copies[key.path[-1]]
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=CHECK_NAME,
        passed=report.fits,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rds_bytes": copy.rds_bytes,
            "sync_headroom_bytes": copy.sync_headroom_bytes,
            "database_bytes": report.database_bytes,
            "all_syncs_headroom_bytes": report.headroom_bytes,
            "budget_bytes": report.budget_bytes,
            "peak_share": dg.MetadataValue.float(round(report.peak_share, 4)),
            "warn_at_share": dg.MetadataValue.float(WARN_SHARE),
            "syncs_need_bytes": report.syncs_need_bytes,
            **{k: v for k, v in report.room.to_dict().items() if v is not None},
        },
    )


def _volume_line(report: StorageReport) -> str:
    room = report.room
    if room.free_bytes is None:
        return f"volume: free space {room.source}"
    verdict = "ok" if report.fits_volume else "WARN: the next syncs do not fit"
    return (
        f"volume: {human(room.free_bytes)} left ({room.source}); every copy's next sync at once "
        f"needs {human(report.syncs_need_bytes)} with its WAL ({verdict})"
    )


def format_report(report: StorageReport) -> str:
    """`goldctl status`'s storage lines."""
    lines = [
        f"storage: database {human(report.database_bytes)} + next syncs "
        f"{human(report.headroom_bytes)} = {human(report.peak_bytes)}, "
        f"{report.peak_share:.1%} of the {human(report.budget_bytes)} budget "
        f"({'ok' if report.peak_share <= WARN_SHARE else 'WARN: over 80 %'})",
        _volume_line(report),
    ]
    for copy in report.copies.values():
        months = f", {copy.partitions} months" if copy.partitions else ""
        lines.append(
            f"  {copy.table}: {human(copy.rds_bytes)}{months}; "
            f"next sync needs {human(copy.sync_headroom_bytes)} more"
        )
    return "\n".join(lines)
