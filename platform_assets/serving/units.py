"""The unit of loading: one path from lake files to a verified, indexed child table.

A unit is one month of a month-partitioned copy or a whole table (its one default partition).
Every sync stages the units it (re)loads the same way: a partitioned staging table in
`gold_stage` whose children are the units under their final names, one binary COPY of the lake
rows into it, verification (rows and segment checksums equal the lake's), the live parent's
indexes (spec and user-made alike) built on every child, ANALYZE. The children are published
by moving them into `gold` and attaching them to the live parent (see publish.py).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import psycopg
import pyarrow as pa
from psycopg import sql

from platform_assets.identifiers import trusted_sql, trusted_sqls
from platform_assets.lake.fingerprint import Segments, differing_segments, segment_checksum_sql
from platform_assets.lake.fingerprint import segments_from_rows as _rows_to_segments
from platform_assets.serving import loader, pausepoints
from platform_assets.serving.catalog import Columns, IndexDef
from platform_assets.serving.errors import DataRefused, SyncVerificationError
from platform_assets.serving.errors import SyncRefused as SyncRefused  # its old home
from platform_assets.serving.names import (
    STAGE_SCHEMA,
    WHOLE,
    Child,
    CopyNames,
    identifiers,
    index_names,
    unit_children,
)

if TYPE_CHECKING:  # pyarrow.dataset costs a second to import: only syncs that copy load it
    import pyarrow.dataset as ds

    from platform_assets.specs import GoldTableSpec

MONTH = re.compile(r"^\d{4}-\d{2}$")
# connections building the staged units' indexes and statistics side by side (with the
# checksum scan's beside them): per-unit DDL is CPU-bound in the server, one core each
BUILD_CONNECTIONS = 2


def month_bounds(month: str) -> tuple[date, date]:
    """'2013-02' -> (2013-02-01, 2013-03-01)."""
    year, mon = (int(p) for p in month.split("-"))
    return date(year, mon, 1), date(year + (mon == 12), mon % 12 + 1, 1)


@dataclass(frozen=True)
class Unit:
    table: str
    key: str  # 'YYYY-MM', or WHOLE
    expected: Segments  # the lake's segments this unit must hold
    child: Child  # its child table's names
    bound: sql.Composable  # its partition bound (`_bound`)

    def month_check(self, column: str) -> sql.Composed | None:
        """The CHECK that lets ATTACH PARTITION skip its validation scan."""
        if self.key == WHOLE:
            return None
        start, end = month_bounds(self.key)
        return sql.SQL("{c} IS NOT NULL AND {c} >= {s} AND {c} < {e}").format(
            c=sql.Identifier(column), s=sql.Literal(str(start)), e=sql.Literal(str(end))
        )


def _bound(key: str) -> sql.Composable:
    if key == WHOLE:
        return sql.SQL("DEFAULT")
    start, end = month_bounds(key)
    return sql.SQL("FOR VALUES FROM ({}) TO ({})").format(
        sql.Literal(str(start)), sql.Literal(str(end))
    )


def units_of(spec: GoldTableSpec, segments: Segments) -> dict[str, Unit]:
    """The units the lake's segments make: one per month if partitioned, else one."""
    if not spec.partitioned:
        child = unit_children(spec.name, [WHOLE])[WHOLE]
        return {WHOLE: Unit(spec.name, WHOLE, dict(segments), child, _bound(WHOLE))}
    bad = sorted(k for k in segments if not MONTH.match(k))
    if bad:
        rows = sum(segments[k][0] for k in bad)
        raise DataRefused(
            f"gold.{spec.name}: {rows} row(s) have no month in {spec.segment_column} "
            f"(segment {', '.join(bad[:3])}); a month-partitioned copy cannot hold them"
        )
    children = unit_children(spec.name, segments)
    return {k: Unit(spec.name, k, {k: v}, children[k], _bound(k)) for k, v in segments.items()}


def _month_filter(column: str, months: list[str]) -> ds.Expression:
    import pyarrow.dataset as ds

    field, expr = ds.field(column), None
    for month in months:
        start, end = month_bounds(month)
        one = (field >= pa.scalar(start, pa.date32())) & (field < pa.scalar(end, pa.date32()))
        expr = one if expr is None else expr | one
    return expr


def postgres_segments(
    conn: psycopg.Connection, relation: str, schema: pa.Schema, column: str
) -> Segments:
    # one statement text for three dialects (lake/fingerprint.py quotes identifiers)
    query = trusted_sql(segment_checksum_sql("postgres", relation, schema, column))
    return _rows_to_segments(conn.execute(query).fetchall())


def verify(
    conn: psycopg.Connection, relation: str, schema: pa.Schema, column: str, expected: Segments
) -> Segments:
    """The staged rows' segments, computed by PostgreSQL beside the index builds; the caller
    compares them with `expected` (the lake's; a benchmark's stand-in returns it unread). On
    the sync's connection (in the sync lock's transaction while it loads), in a savepoint
    rolled back after the scan: the lock stays, the scan's table locks end with it."""
    with conn.transaction(force_rollback=True):
        return postgres_segments(conn, relation, schema, column)


@dataclass(frozen=True)
class Staged:
    units: tuple[Unit, ...]
    rows: int
    copy_seconds: float
    rows_per_s: float | None  # None: the copy took no measurable time


def stage(
    conn: psycopg.Connection,
    conninfo: str,
    spec: GoldTableSpec,
    names: CopyNames,
    units: list[Unit],
    dataset: ds.Dataset,
    schema: pa.Schema,
    columns: Columns,
    index_defs: list[IndexDef],
    log: Callable[[str], None],
) -> Staged:
    """Load `units` into `gold_stage`, verified, indexed and analyzed, ready to publish
    (`columns`: `schema`'s PostgreSQL columns, the snapshot's). The load's backends are `conn`
    (the sync's: the checksum scan, then the finishing DDL) and the COPY streams (the staging
    tables, the COPY, the index builds).

    On any failure the staging tables are dropped and the error raised; nothing live changed.
    """
    months = [u.key for u in units if u.key != WHOLE]
    where = _month_filter(spec.segment_column, months) if months else None
    builders = min(BUILD_CONNECTIONS, len(units))  # two units or more: two build at once
    streams = loader.Streams(conninfo, dataset, where, least=builders)  # connecting overlaps
    try:
        return _stage(
            conn,
            conninfo,
            spec,
            names,
            units,
            dataset,
            schema,
            columns,
            index_defs,
            log,
            where,
            streams,
        )
    finally:
        streams.close()


def _stage(
    conn: psycopg.Connection,
    conninfo: str,
    spec: GoldTableSpec,
    names: CopyNames,
    units: list[Unit],
    dataset: ds.Dataset,
    schema: pa.Schema,
    columns: Columns,
    index_defs: list[IndexDef],
    log: Callable[[str], None],
    where: ds.Expression | None,
    streams: loader.Streams,
) -> Staged:
    staging, comment = names.staging, sql.Literal(names.comment)
    not_null = set(spec.primary_key)
    try:
        expected = {k: v for u in units for k, v in u.expected.items()}
        rows = sum(n for n, _ in expected.values())
        ddl = index_ddl(spec.name, [u.child for u in units], index_defs)
        # DDL goes in batches: one round trip and one commit each, not one per statement and
        # unit (a full rebuild of 120 months issues ~800 statements).
        children = sql.SQL(", ").join(u.child.staged for u in units)
        table = loader.create_table_ddl(STAGE_SCHEMA, names.stage, schema, not_null, columns)
        create: list[sql.Composable] = [
            sql.SQL("DROP TABLE IF EXISTS {}, {}").format(staging, children),
            sql.SQL("{} PARTITION BY RANGE ({})").format(
                table, sql.Identifier(spec.segment_column)
            ),
            sql.SQL("COMMENT ON TABLE {} IS {}").format(staging, comment),
        ]
        for unit in units:
            child = unit.child.staged
            check = unit.month_check(spec.segment_column)
            name = sql.Identifier(unit.child.month_check)
            month = (
                sql.SQL("(CONSTRAINT {} CHECK ({})) ").format(name, check) if check else sql.SQL("")
            )
            create += [
                sql.SQL("CREATE TABLE {} PARTITION OF {} {}{}").format(
                    child, staging, month, unit.bound
                ),
                sql.SQL("COMMENT ON TABLE {} IS {}").format(child, comment),
            ]
        # on a COPY stream, committed: the streams see the tables while `conn` holds the lock
        streams.execute(0, one_block(conn, create))
        log(f"loading {rows} rows into {len(units)} unit(s) of gold.{spec.name}")
        try:
            stats = loader.load_dataset(
                conninfo,
                STAGE_SCHEMA,
                names.stage,
                dataset,
                schema,
                where,
                streams,
                list(spec.primary_key),
            )
        except loader.NulInText as nul:
            raise DataRefused(
                f"refusing to sync gold.{spec.name}: column {nul.column} holds a NUL character "
                f"in the row {', '.join(f'{k}={v}' for k, v in nul.key.items())}; PostgreSQL "
                "text cannot hold it. RDS keeps serving the old copy",
                table=spec.name,
            ) from None
        pausepoints.reached("verify")
        # The checksum scan (on `conn`, see `verify`) overlaps the index builds and ANALYZE,
        # which read the same committed rows on the COPY streams' connections: two when there
        # are two units or more (each its own units: no lock between them; opened for it when
        # the COPY has one stream), so two cores build at once. Nothing is published before all
        # are done. The constraints that adopt the indexes (ACCESS EXCLUSIVE) come after the
        # scan, whose locks ended with its savepoint, with the detach from the staging parent.
        builders = min(BUILD_CONNECTIONS, len(streams.connections))
        parts = [units[i::builders] for i in range(builders)]
        blocks = [one_block(conn, _build_sql(part, ddl)) for part in parts if part]
        with ThreadPoolExecutor(max_workers=len(blocks) + 1, thread_name_prefix="build") as pool:
            scan = pool.submit(
                verify, conn, names.staging_text, schema, spec.segment_column, expected
            )
            builds = [pool.submit(streams.execute, i, block) for i, block in enumerate(blocks)]
            try:
                for build in builds:
                    build.result()
            finally:
                actual = scan.result()  # a mismatch says more than an index error it caused
                if actual != expected:
                    bad = differing_segments(expected, actual)
                    raise SyncVerificationError(
                        f"staging of gold.{spec.name} does not match the lake: "
                        f"{sum(n for n, _ in actual.values())} rows vs {rows} expected; "
                        f"differing segments: {', '.join(bad[:12])}"
                    )
        # Ready-made tables: the publish only moves and attaches them.
        finish: list[sql.Composable] = [c for u in units for c in ddl[u.child.name][1]]
        finish += [
            sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(staging, u.child.staged)
            for u in units
        ]
        finish.append(sql.SQL("DROP TABLE {}").format(staging))
        conn.execute(sql.SQL(";\n").join(finish))
        rate = stats.rows_per_s
        log(f"copied {stats.rows} rows in {stats.seconds:.2f}s ({rate:,.0f} rows/s)")
        return Staged(tuple(units), stats.rows, stats.seconds, rate if stats.seconds else None)
    except BaseException:
        discard_staging(conn, names)
        raise


IndexDDL = tuple[list[sql.Composed], list[sql.Composed]]  # (index builds, adopting constraints)


def _build_sql(units: list[Unit], ddl: dict[str, IndexDDL]) -> list[sql.Composed]:
    """The index builds of `units`, then their statistics (the children's only: the staging
    parent's own would be dropped with it)."""
    children = sql.SQL(", ").join(u.child.staged for u in units)
    analyze = sql.SQL("ANALYZE {}").format(children)
    return [s for u in units for s in ddl[u.child.name][0]] + [analyze]


def one_block(conn: psycopg.Connection, statements: Sequence[sql.Composable]) -> str:
    """`statements` as one statement for a COPY stream's connection (ADBC prepares what it
    runs, so one statement a round trip): a `DO` block that EXECUTEs each, quoted as literals
    (`conn` renders them)."""
    body = sql.SQL(" ").join(
        sql.SQL("EXECUTE {};").format(sql.Literal(s.as_string(conn))) for s in statements
    )
    return sql.SQL("DO {}").format(sql.Literal(f"BEGIN {body.as_string(conn)} END")).as_string(conn)


def index_ddl(
    table: str, children: Sequence[Child], defs: Sequence[IndexDef]
) -> dict[str, IndexDDL]:
    """The live parent's indexes for each staged child (by name), so ATTACH adopts them instead
    of building them under its lock: (index builds, constraints adopting them). Names are the
    child's own, within PostgreSQL's 63 bytes."""
    suffixes = [
        d.name[len(table) + 1 :] if d.name.startswith(f"{table}_") else d.name for d in defs
    ]
    named = index_names([c.name for c in children], suffixes)
    bodies = trusted_sqls([d.body for d in defs])
    ddl: dict[str, IndexDDL] = {}
    for child in children:
        builds: list[sql.Composed] = []
        constraints: list[sql.Composed] = []
        for d, body, index in zip(defs, bodies, named[child.name], strict=True):
            name = sql.Identifier(index)
            builds.append(
                sql.SQL("CREATE {}INDEX {} ON {} {}").format(
                    sql.SQL("UNIQUE " if d.unique else ""), name, child.staged, body
                )
            )
            if d.constraint in ("p", "u"):
                kind = sql.SQL("PRIMARY KEY" if d.constraint == "p" else "UNIQUE")
                constraints.append(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} USING INDEX {}").format(
                        child.staged, name, kind, name
                    )
                )
        ddl[child.name] = (builds, constraints)
    return ddl


def discard_staging(conn: psycopg.Connection, names: CopyNames) -> None:
    """Drop staging after a failure, if the connection still works: a lost connection must not
    replace the error that says why the sync failed (the next sync drops the leftovers)."""
    if not conn.broken:
        with contextlib.suppress(psycopg.Error):
            drop_staging(conn, names)


def drop_staging(conn: psycopg.Connection, names: CopyNames) -> list[str]:
    """Drop the table's staging tables (a failed run's, or a crashed one's); returns their
    names."""
    found = [
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND obj_description(c.oid, 'pg_class') = %s",
            (STAGE_SCHEMA, names.comment),
        ).fetchall()
    ]
    if found:
        tables = sql.SQL(", ").join(identifiers(found, STAGE_SCHEMA))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(tables))
    return found
