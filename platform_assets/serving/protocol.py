"""The sync protocol, lake Gold -> RDS (DESIGN.md, "Sync protocol").

1. read the lake state; if the ledger already holds it, do nothing;
2. refuse an empty table or one that shrank beyond the spec, unless forced;
3. stream the Parquet files into a staging table with binary COPY;
4. verify row count and segment checksums against the lake's, build indexes, ANALYZE;
5. swap in one short transaction that also writes the ledger;
6. drop leftovers of crashed runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from platform_assets.serving import indexes, ledger, loader, partitions, swap
from platform_assets.specs import GoldTableSpec
from resources.fingerprint import (
    Segments,
    differing_segments,
    fingerprint,
    segment_checksum_sql,
    segments_from_rows,
)
from resources.lake_tables import GoldLake, LakeTableState
from resources.serving_db import ServingDatabase

SCHEMA = "gold"


class SyncRefused(RuntimeError):
    """The guard refused to publish; the old copy keeps serving."""

    def __init__(self, message: str, numbers: dict):
        super().__init__(message)
        self.numbers = numbers


class SyncVerificationError(RuntimeError):
    """Staging did not match the lake; nothing was swapped."""


@dataclass
class SyncResult:
    table: str
    action: str  # "loaded" | "unchanged"
    lake_version: str
    row_count: int
    fingerprint: str
    seconds: float = 0.0
    load_seconds: float = 0.0
    rows_per_s: float | None = None
    swap_attempts: int = 0
    dropped_leftovers: list[str] = field(default_factory=list)
    partitions_reloaded: list[str] | None = None  # partitioned tables: the months reloaded
    indexes_created: list[str] = field(default_factory=list)  # declared after the copy was built

    def metadata(self) -> dict:
        meta = {
            "action": self.action,
            "lake_version": self.lake_version,
            "dagster/row_count": self.row_count,
            "dagster/table_name": f"gold.{self.table}",
            "fingerprint": self.fingerprint,
        }
        if self.action == "loaded":
            meta.update(
                {
                    "duration_s": round(self.seconds, 3),
                    "copy_seconds": round(self.load_seconds, 3),
                    "rows_per_s": round(self.rows_per_s or 0.0),
                    "swap_attempts": self.swap_attempts,
                }
            )
        if self.indexes_created:
            meta["indexes_created"] = ", ".join(self.indexes_created)
        if self.partitions_reloaded is not None:
            meta["partitions_reloaded"] = len(self.partitions_reloaded)
            meta["months_reloaded"] = ", ".join(self.partitions_reloaded[:24]) or "none"
        return meta


def lake_expectation(engine, lake: GoldLake, spec: GoldTableSpec, state: LakeTableState):
    """Row count and segment checksums of what the lake holds now.

    The manifest's figures when the stored files are the published ones; otherwise (someone
    changed the location outside the platform) the engine recomputes them from the files.
    """
    if not state.changed_outside:
        segments = {k: (v[0], v[1]) for k, v in state.manifest.segments.items()}
        return state.manifest.row_count, segments
    schema = loader.load_schema(lake.storage.dataset(state.parquet_keys).schema)
    segments = engine.segment_checksums(f"gold.{spec.name}", schema, spec.segment_column)
    return sum(n for n, _ in segments.values()), segments


def postgres_segments(
    conn: psycopg.Connection, relation: str, schema, segment_column: str
) -> Segments:
    sql = segment_checksum_sql("postgres", relation, schema, segment_column)
    return segments_from_rows(conn.execute(sql).fetchall())


def _table_lock_key(table: str) -> str:
    return f"gold-sync:{table}"


def sync_table(
    spec: GoldTableSpec,
    lake: GoldLake,
    engine,
    db: ServingDatabase,
    force: bool = False,
    log: Callable[[str], None] = print,
    months: list[str] | None = None,
) -> SyncResult:
    """Run the protocol for one table. `months` (partitioned tables) reloads those months even
    when their checksums match: the RDS side of a backfill or a repair."""
    if months and not spec.partitioned:
        raise ValueError(f"gold.{spec.name} is not partitioned: months cannot be reloaded alone")
    started = time.monotonic()
    state = lake.current_state(spec.name)
    if state is None:
        raise LookupError(f"gold.{spec.name} has no published version in the lake yet")

    with db.connect(autocommit=True) as conn:
        ledger.bootstrap(conn, db.dashboard_role)
        # One sync per table at a time; others wait rather than race on the same staging.
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (_table_lock_key(spec.name),))
        try:
            dropped = swap.drop_leftovers(conn, SCHEMA, spec.name)
            if dropped:
                log(f"dropped leftovers of crashed runs: {', '.join(dropped)}")
            current = ledger.read(conn, spec.name)
            live_exists = conn.execute(
                "SELECT to_regclass(%s)", (f"{SCHEMA}.{spec.name}",)
            ).fetchone()[0]
            if (
                current is not None
                and live_exists
                and current.lake_token == state.token
                and current.lake_version == state.state_id
                and not force
                and not months
            ):
                log(f"gold.{spec.name} already holds lake version {state.state_id}: nothing to do")
                created = _ensure_indexes(conn, spec, log)
                return SyncResult(
                    spec.name,
                    "unchanged",
                    state.state_id,
                    current.row_count,
                    current.fingerprint,
                    seconds=time.monotonic() - started,
                    dropped_leftovers=dropped,
                    indexes_created=created,
                )

            expected_rows, expected_segments = lake_expectation(engine, lake, spec, state)
            _guard(spec, expected_rows, current, force)

            if (
                spec.partitioned
                and current is not None
                and partitions.is_partitioned(conn, spec.name)
            ):
                result = _sync_changed_months(
                    spec,
                    lake,
                    db,
                    conn,
                    state,
                    expected_segments,
                    started,
                    force,
                    log,
                    forced_months=set(months or ()),
                )
                # the months kept were built under the spec of their time
                result.indexes_created = _ensure_indexes(conn, spec, log)
            else:  # a full load builds every declared index on the new table
                result = _load_and_swap(
                    spec, lake, db, conn, state, expected_rows, expected_segments, started, log
                )
            result.dropped_leftovers = dropped
            return result
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_table_lock_key(spec.name),))


def _ensure_indexes(conn: psycopg.Connection, spec: GoldTableSpec, log) -> list[str]:
    created = indexes.ensure(conn, spec)
    if created:
        log(f"gold.{spec.name}: created the indexes its spec declares: {', '.join(created)}")
    return created


def _guard(spec: GoldTableSpec, rows: int, current: ledger.LedgerRow | None, force: bool) -> None:
    previous = current.row_count if current else None
    numbers = {
        "lake_rows": rows,
        "serving_rows": previous,
        "max_shrink_ratio": spec.max_shrink_ratio,
    }
    if force:
        return
    if rows == 0:
        raise SyncRefused(
            f"refusing to publish gold.{spec.name}: the lake table is empty "
            f"(RDS keeps serving {previous if previous is not None else 'nothing'} rows; "
            "re-run with force to publish it anyway)",
            numbers,
        )
    if previous and rows < previous * (1 - spec.max_shrink_ratio):
        raise SyncRefused(
            f"refusing to publish gold.{spec.name}: it would shrink from {previous} to {rows} rows "
            f"(more than {spec.max_shrink_ratio:.0%}); RDS keeps serving the old copy "
            "(re-run with force to publish it anyway)",
            numbers,
        )


def _load_and_swap(
    spec, lake, db, conn, state, expected_rows, expected_segments, started, log
) -> SyncResult:
    dataset = lake.storage.dataset(state.parquet_keys)
    schema = loader.load_schema(dataset.schema)
    staging = swap.staging_name(spec.name, state.token)
    if spec.partitioned:
        partitions.create_partitioned(
            conn, staging, schema, spec.segment_column, expected_segments, spec.primary_key
        )
    else:
        conn.execute(loader.create_table_ddl(SCHEMA, staging, schema, not_null=spec.primary_key))
    try:
        log(
            f"loading {expected_rows} rows of lake version {state.state_id} into {SCHEMA}.{staging}"
        )
        stats = loader.load_dataset(db.conninfo(), SCHEMA, staging, dataset, schema)
        log(f"copied {stats.rows} rows in {stats.seconds:.2f}s ({stats.rows_per_s:,.0f} rows/s)")

        relation = f"{ledger.quote_ident(SCHEMA)}.{ledger.quote_ident(staging)}"
        actual_segments = postgres_segments(conn, relation, schema, spec.segment_column)
        actual_rows = sum(n for n, _ in actual_segments.values())
        if actual_rows != expected_rows or actual_segments != expected_segments:
            bad = differing_segments(expected_segments, actual_segments)
            raise SyncVerificationError(
                f"staging for gold.{spec.name} does not match the lake: {actual_rows} rows vs "
                f"{expected_rows} expected; differing segments: {', '.join(bad[:12]) or 'none'}"
            )
        indexes.build(conn, spec, staging)
        conn.execute(f"ANALYZE {relation}")

        seconds = time.monotonic() - started
        row = ledger.LedgerRow(
            table_name=spec.name,
            partition_key="",
            lake_version=state.state_id,
            lake_token=state.token,
            row_count=actual_rows,
            fingerprint=fingerprint(actual_segments),
            segments={k: list(v) for k, v in actual_segments.items()},
            lake_created_at=state.created_at,
            loaded_at=None,  # now() in the transaction
            duration_s=seconds,
            rows_per_s=stats.rows_per_s,
        )

        def in_transaction(c: psycopg.Connection) -> None:
            ledger.write(c, row)
            if spec.partitioned:
                partitions.rename_children(c, spec.name, staging)
                for month in ledger.read_partitions(c, spec.name):
                    ledger.delete_partition(c, spec.name, month)
                for month, segment in actual_segments.items():
                    ledger.write(
                        c,
                        partitions.ledger_row(
                            spec, month, state, segment, seconds, stats.rows_per_s
                        ),
                    )

        attempts = swap.swap_in(
            conn,
            SCHEMA,
            spec.name,
            staging,
            db.dashboard_role,
            in_transaction=in_transaction,
            lock_timeout_ms=db.lock_timeout_ms,
        )
    except BaseException:
        conn.execute(
            f"DROP TABLE IF EXISTS {ledger.quote_ident(SCHEMA)}.{ledger.quote_ident(staging)}"
        )
        raise
    log(f"gold.{spec.name} now serves lake version {state.state_id} ({attempts} swap attempt(s))")
    return SyncResult(
        spec.name,
        "loaded",
        state.state_id,
        actual_rows,
        row.fingerprint,
        seconds=time.monotonic() - started,
        load_seconds=stats.seconds,
        rows_per_s=stats.rows_per_s,
        swap_attempts=attempts,
    )


def _sync_changed_months(
    spec, lake, db, conn, state, expected_segments, started, force, log, forced_months=frozenset()
) -> SyncResult:
    """Reload only the months whose lake checksum differs from the ledger's (all if forced)."""
    unknown = set(forced_months) - set(expected_segments)
    if unknown:
        raise ValueError(
            f"gold.{spec.name} has no lake data for month(s) {', '.join(sorted(unknown))}; "
            f"months look like {min(expected_segments, default='2013-01')}"
        )
    partitions_rows = ledger.read_partitions(conn, spec.name)
    changed = sorted(
        m
        for m in set(expected_segments) | set(partitions_rows)
        if force
        or m in forced_months
        or _segment_of(partitions_rows.get(m), m) != expected_segments.get(m)
    )
    dataset = lake.storage.dataset(state.parquet_keys)
    schema = loader.load_schema(dataset.schema)
    copy_seconds, copied, attempts = 0.0, 0, 0
    log(f"gold.{spec.name}: {len(changed)} of {len(expected_segments)} month(s) to reload")
    for month in changed:
        segment = expected_segments.get(month)
        if segment is None:  # the month left the lake
            attempts += partitions.swap_partition(
                conn,
                spec.name,
                month,
                None,
                db.dashboard_role,
                lambda c, m=month: ledger.delete_partition(c, spec.name, m),
                db.lock_timeout_ms,
            )
            log(f"removed month {month}")
            continue
        staging = f"{spec.name}{swap.STAGE_MARK}{month.replace('-', '')}_{state.token[:8]}"
        partitions.prepare_month_staging(conn, spec, staging, schema, month)
        try:
            stats = loader.load_dataset(
                db.conninfo(),
                SCHEMA,
                staging,
                dataset,
                schema,
                filter=partitions.month_filter(spec.segment_column, month),
            )
            copy_seconds += stats.seconds
            copied += stats.rows
            relation = f"{ledger.quote_ident(SCHEMA)}.{ledger.quote_ident(staging)}"
            actual = postgres_segments(conn, relation, schema, spec.segment_column)
            if actual.get(month) != segment or set(actual) - {month}:
                raise SyncVerificationError(
                    f"staging of gold.{spec.name} month {month} does not match the lake: "
                    f"{actual.get(month)} vs {segment} (rows, checksum)"
                )
            indexes.build(conn, spec, staging)
            conn.execute(f"ANALYZE {relation}")
            row = partitions.ledger_row(
                spec, month, state, segment, time.monotonic() - started, stats.rows_per_s
            )
            attempts += partitions.swap_partition(
                conn,
                spec.name,
                month,
                staging,
                db.dashboard_role,
                lambda c, r=row: ledger.write(c, r),
                db.lock_timeout_ms,
            )
        except BaseException:
            conn.execute(
                f"DROP TABLE IF EXISTS {ledger.quote_ident(SCHEMA)}.{ledger.quote_ident(staging)}"
            )
            raise
    total = sum(n for n, _ in expected_segments.values())
    seconds = time.monotonic() - started
    with conn.transaction():
        ledger.write(
            conn,
            ledger.LedgerRow(
                table_name=spec.name,
                partition_key="",
                lake_version=state.state_id,
                lake_token=state.token,
                row_count=total,
                fingerprint=fingerprint(expected_segments),
                segments={k: list(v) for k, v in expected_segments.items()},
                lake_created_at=state.created_at,
                loaded_at=None,
                duration_s=seconds,
                rows_per_s=copied / copy_seconds if copy_seconds else None,
            ),
        )
    log(f"gold.{spec.name} now serves lake version {state.state_id} ({len(changed)} month(s))")
    return SyncResult(
        spec.name,
        "loaded",
        state.state_id,
        total,
        fingerprint(expected_segments),
        seconds=seconds,
        load_seconds=copy_seconds,
        rows_per_s=copied / copy_seconds if copy_seconds else None,
        swap_attempts=attempts,
        partitions_reloaded=changed,
    )


def _segment_of(row: ledger.LedgerRow | None, month: str):
    if row is None or month not in row.segments:
        return None
    rows, checksum = row.segments[month]
    return (int(rows), int(checksum))
