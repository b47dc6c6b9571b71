"""Bulk load: Parquet in the lake -> Arrow record batches -> PostgreSQL binary COPY.

The batches stream from the lake into ADBC's `adbc_ingest`, which speaks binary COPY, so memory
stays bounded by the batch size whatever the table size, and the load runs at COPY speed.
`benchmarks/sync_throughput.py` measures both; the constants below are what it found best.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Container, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
from psycopg import sql

from platform_assets.identifiers import trusted_sqls
from platform_assets.lake import types as lake_types
from platform_assets.serving import pausepoints

if TYPE_CHECKING:  # pyarrow.dataset costs a second to import: only syncs that copy load it
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow.dataset as ds

BATCH_ROWS = 65_536  # rows per Parquet decode step
# Bytes (Arrow) per batch handed to COPY. ADBC encodes a whole batch before it sends any of it,
# so with big batches the client encodes while the server idles, then the server parses while
# the client waits. Small batches let the two overlap: one stream went 1.0-1.3 M -> 1.6-2.0 M
# rows/s on the 1 M-row benchmark table (16-128 KiB alike); with two streams 256 KiB measured
# 2.03-2.09 M rows/s against 2.05 M for 64 KiB.
COPY_CHUNK_BYTES = 256 * 1024
COPY_STREAMS = 2  # parallel COPY connections per load (see load_dataset)


def load_schema(schema: pa.Schema) -> pa.Schema:
    """The Arrow schema sent to PostgreSQL: each type maps one-to-one onto its PostgreSQL
    type (`lake_types.postgres_columns`)."""
    return lake_types.load_schema(schema)


class NulInText(Exception):
    """A text value holds a NUL character, which PostgreSQL text cannot hold."""

    def __init__(self, column: str, key: dict):
        super().__init__(f"column {column} holds a NUL character in the row {key}")
        self.column, self.key = column, key


class NulScreen:
    """Looks for NUL characters in the text columns of the very batches COPY sends.

    PostgreSQL would refuse such a row with an error that names no row; the screen stops the load
    at the first one instead (no batch holding it is sent) and `load_dataset` raises `NulInText`
    with the column and the row's key. It reads no file again: a scan of the lake before COPY
    decoded the text columns twice (0.1-0.2 s of a 2-3 s replace of 1 M rows). Vectorized, no
    per-row Python; shared by the load's streams, so one stream's find stops them all.
    """

    def __init__(self, schema: pa.Schema, key: list[str]):
        self.text = [f.name for f in schema if pa.types.is_string(f.type)]
        self.key = key
        self.found: tuple[str, dict] | None = None

    def first_nul(self, batch: pa.RecordBatch) -> tuple[str, dict] | None:
        """(column, key of the row) of the batch's first text value holding NUL, or None."""
        import pyarrow.compute as pc

        for name in self.text:
            # pyarrow.compute defines its functions at import: its stubs do not list them
            hits = pc.match_substring(  # pyright: ignore[reportAttributeAccessIssue]
                batch.column(name).cast(pa.string()), "\x00"
            )
            where = pc.index(hits, True).as_py()
            if where >= 0:
                return name, {k: batch.column(k)[where].as_py() for k in self.key}
        return None

    def screened(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        """The reader's batches up to the first NUL anywhere in the load (then it fails)."""
        if not self.text:
            return reader

        def checked(source: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
            for batch in source:
                # streams share the screen: a clean batch never writes its None over a finding
                hit = None if self.found else self.first_nul(batch)
                if hit is not None and self.found is None:
                    self.found = hit
                if self.found is not None:
                    raise NulInText(*self.found)  # ADBC aborts the COPY; load_dataset says why
                yield batch

        return pa.RecordBatchReader.from_batches(reader.schema, checked(reader))


def column_defs(columns: Sequence[tuple[str, str]], not_null: Container[str] = ()) -> sql.Composed:
    """`"name" type [NOT NULL], ...` of a CREATE TABLE, the types from the one type mapping."""
    names, types = zip(*columns, strict=True) if columns else ((), ())
    return sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(
            sql.Identifier(name), pg, sql.SQL(" NOT NULL" if name in not_null else "")
        )
        for name, pg in zip(names, trusted_sqls(types), strict=True)
    )


def create_table_ddl(
    schema_name: str,
    table: str,
    schema: pa.Schema,
    not_null: Container[str] = (),
    columns: Sequence[tuple[str, str]] | None = None,
) -> sql.Composed:
    """`columns`: `schema`'s PostgreSQL columns when the caller has them (a sync's snapshot)."""
    if columns is None:
        columns = lake_types.postgres_columns(schema)
    cols = column_defs(columns, not_null)
    return sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema_name, table), cols)


def batches(
    dataset: ds.Dataset,
    schema: pa.Schema,
    filter: ds.Expression | None = None,
    shard: tuple[int, int] = (0, 1),
) -> pa.RecordBatchReader:
    """Stream the dataset as record batches of `schema` (casting where Parquet types differ).

    Row group by row group, decoded on the calling thread with one batch of read-ahead: COPY is
    slower than Parquet decoding, so anything that reads ahead only piles decoded batches up.
    Measured with benchmarks/sync_throughput.py (peak RSS of a load, 1x -> 10x the rows): a
    threaded dataset scan grew 255 -> 863 MB; an unthreaded dataset scan still grew with the
    number of files (180 -> 265 MB from 8 to 320 small files); this stays flat (157 -> 173 MB)
    and is no slower. Each file is read in its own types (a Gold version is one CTAS, so all its
    files agree) and cast to `schema`; a file missing a column fails rather than loading nulls.

    `filter` keeps matching rows (row groups whose statistics exclude it are skipped);
    `shard=(i, n)` keeps every n-th row group starting at i, so n streams split one dataset.
    """
    index, count = shard

    def scan() -> Iterator[pa.RecordBatch]:
        position = 0
        for fragment in dataset.get_fragments(filter=filter):
            for piece in fragment.split_by_row_group(filter):
                position += 1
                if (position - 1) % count != index:
                    continue
                yield from piece.to_batches(
                    columns=schema.names,
                    filter=filter,
                    batch_size=BATCH_ROWS,
                    batch_readahead=1,
                    fragment_readahead=1,
                    use_threads=False,
                    cache_metadata=False,
                )

    return lake_types.cast_batches(schema, scan())


def _copy_sized(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """The same rows as zero-copy slices of about `COPY_CHUNK_BYTES` each (see there why)."""

    def slices(source: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        for batch in source:
            if batch.num_rows == 0:
                continue
            step = max(64, COPY_CHUNK_BYTES * batch.num_rows // max(batch.nbytes, 1))
            for offset in range(0, batch.num_rows, step):
                yield batch.slice(offset, step)
                pausepoints.reached("copy")

    return pa.RecordBatchReader.from_batches(reader.schema, slices(reader))


@dataclass(frozen=True)
class LoadStats:
    rows: int
    seconds: float
    rows_per_s: float = field(init=False)  # 0.0 when no time was measured

    def __post_init__(self) -> None:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        object.__setattr__(self, "rows_per_s", rate)


def copy_into(
    conninfo: str, schema_name: str, table: str, reader: pa.RecordBatchReader
) -> LoadStats:
    """Append the reader's rows to an existing table with binary COPY (ADBC)."""
    import adbc_driver_postgresql.dbapi as adbc

    started = time.monotonic()
    with adbc.connect(conninfo) as conn:
        rows = _ingest(conn, schema_name, table, reader)
    return LoadStats(rows, time.monotonic() - started)


def _ingest(
    conn: adbc.Connection, schema_name: str, table: str, reader: pa.RecordBatchReader
) -> int:
    """COPY the reader's rows on an open ADBC connection and commit; returns the rows.

    The COPY commits without waiting for its WAL to reach disk (`synchronous_commit` off for
    this transaction only): the rows go to a staging table that is verified and swapped in by a
    later, synchronous commit, which flushes the WAL up to and past this one. A crash before that
    loses only the staging table, which the next sync drops. Measured +7 % rows/s (1.89 -> 2.04 M).
    """
    with _rolled_back_on_failure(conn), conn.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit TO off")
        rows = cur.adbc_ingest(
            table, _copy_sized(reader), mode="append", db_schema_name=schema_name
        )
        conn.commit()
    return int(rows or 0)


@contextlib.contextmanager
def _rolled_back_on_failure(conn: adbc.Connection) -> Iterator[None]:
    """A failed statement's transaction ends at once: its locks would stall the sync's own
    cleanup (the staging drop) while the connection stays open."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            conn.rollback()
        raise


class Streams:
    """The COPY connections of one load, opened in the background as soon as it is known.

    ADBC reads the server's whole type catalog when it connects (all of pg_type and
    pg_attribute: 0.1-0.3 s, growing with the number of tables), so a sync opens them as soon as
    it knows its units. They are the load's other backends: the first creates the staging
    tables (committed where every stream sees them, while the sync's own connection keeps the
    sync lock's transaction open), and after the COPY they build the indexes (`execute`).
    `close` closes them all.
    """

    def __init__(
        self,
        conninfo: str,
        dataset: ds.Dataset,
        filter: ds.Expression | None = None,
        count: int = COPY_STREAMS,
        least: int = 1,
    ) -> None:
        import adbc_driver_postgresql.dbapi as adbc

        # a stream without a row group of its own would only pay a connection (a one-file
        # month-partitioned table has one), unless the caller has other work for it (`least`
        # connections: the index builds of two units or more)
        groups = sum(f.num_row_groups for f in dataset.get_fragments(filter=filter))
        self.count = max(1, min(count, groups))  # the COPY streams, the first `count`
        opened = max(self.count, least)
        self.pool = ThreadPoolExecutor(max_workers=opened, thread_name_prefix="copy")
        self.connections = [self.pool.submit(adbc.connect, conninfo) for _ in range(opened)]

    def execute(self, i: int, statement: str) -> None:
        """Run one SQL statement (text: ADBC prepares it, so one statement, e.g. a `DO` block)
        on stream `i`'s connection, and commit."""
        conn = self.connections[i].result()
        with _rolled_back_on_failure(conn), conn.cursor() as cur:
            cur.execute(statement)
            conn.commit()

    def close(self) -> None:
        for future in self.connections:
            if not future.cancel() and future.exception() is None:
                future.result().close()
        self.pool.shutdown()


def load_dataset(
    conninfo: str,
    schema_name: str,
    table: str,
    dataset: ds.Dataset,
    schema: pa.Schema,
    filter: ds.Expression | None = None,
    streams: Streams | None = None,
    key: list[str] | None = None,
) -> LoadStats:
    """Copy a dataset into an existing (staging) table over parallel COPY streams (`streams`,
    opened here unless the caller opened them ahead). A text value holding NUL stops the load:
    `NulInText` names its column and the row's `key` columns (see `NulScreen`).

    Each stream takes every n-th row group on its own connection. The server parses each COPY
    in its own backend, so two streams use both cores of a small machine (benchmark: 1.8 M ->
    ~2.0 M rows/s locally; more against a multi-core RDS). Streams commit separately: callers
    load into a staging table that is verified (row count, checksums) before it goes live and
    dropped on any failure, so a partial load is never served.
    """
    started = time.monotonic()
    opened = streams or Streams(conninfo, dataset, filter)
    screen = NulScreen(schema, key or [])
    try:
        count = opened.count

        def one(i: int) -> int:
            reader = screen.screened(batches(dataset, schema, filter, shard=(i, count)))
            return _ingest(opened.connections[i].result(), schema_name, table, reader)

        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="ingest") as pool:
            loads = [pool.submit(one, i) for i in range(count)]
            wait(loads)
        if screen.found is not None:  # the streams' COPY errors only echo it
            raise NulInText(*screen.found)
        rows = sum(f.result() for f in loads)
    finally:
        if streams is None:  # the caller's stay open for what it does next
            opened.close()
    return LoadStats(rows, time.monotonic() - started)
