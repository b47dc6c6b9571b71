"""Bulk load: Parquet in the lake -> Arrow record batches -> PostgreSQL binary COPY.

The batches stream from the lake into ADBC's `adbc_ingest`, which speaks binary COPY, so memory
stays bounded by the batch size whatever the table size, and the load runs at COPY speed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as ds

from platform_assets.serving.ledger import quote_ident

BATCH_ROWS = 65_536


def pg_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "bigint"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "double precision"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz else "timestamp"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    raise TypeError(f"no PostgreSQL type for Arrow type {arrow_type}")


def load_schema(schema: pa.Schema) -> pa.Schema:
    """The Arrow schema we send to PostgreSQL: the plain types `pg_type` maps one-to-one."""
    fields = []
    for f in schema:
        t = f.type
        if pa.types.is_integer(t):
            t = pa.int64()
        elif pa.types.is_floating(t) or pa.types.is_decimal(t):
            t = pa.float64()
        elif pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_dictionary(t):
            t = pa.string()
        elif pa.types.is_date(t):
            t = pa.date32()
        fields.append(pa.field(f.name, t))
    return pa.schema(fields)


def create_table_ddl(schema_name: str, table: str, schema: pa.Schema, not_null=()) -> str:
    cols = ", ".join(
        f"{quote_ident(f.name)} {pg_type(f.type)}{' NOT NULL' if f.name in not_null else ''}"
        for f in schema
    )
    return f"CREATE TABLE {quote_ident(schema_name)}.{quote_ident(table)} ({cols})"


def batches(dataset: ds.Dataset, schema: pa.Schema) -> pa.RecordBatchReader:
    """Stream the dataset as record batches of `schema` (casting where Parquet types differ)."""
    scanner = dataset.scanner(columns=schema.names, batch_size=BATCH_ROWS, use_threads=True)
    source = scanner.to_reader()
    if source.schema == schema:
        return source
    return pa.RecordBatchReader.from_batches(schema, (b.cast(schema) for b in source))


@dataclass(frozen=True)
class LoadStats:
    rows: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def copy_into(
    conninfo: str, schema_name: str, table: str, reader: pa.RecordBatchReader
) -> LoadStats:
    """Append the reader's rows to an existing table with binary COPY (ADBC)."""
    import adbc_driver_postgresql.dbapi as adbc

    started = time.monotonic()
    with adbc.connect(conninfo) as conn, conn.cursor() as cur:
        rows = cur.adbc_ingest(table, reader, mode="append", db_schema_name=schema_name)
        conn.commit()
    return LoadStats(int(rows or 0), time.monotonic() - started)
