"""The one type mapping: lake Arrow type -> Athena type -> PostgreSQL type (docs/DESIGN.md,
"Types").

Every type the Gold SQL can produce is stored in the lake as one canonical Arrow type, declared
to Athena as one type and copied into PostgreSQL as one type, exactly: decimals stay decimals,
doubles keep NaN, the infinities, -0.0 and every bit, integers keep their width, timestamps
keep their microseconds and timestamptz is UTC. A type with no exact home is refused by name
(`UnsupportedType`) rather than converted. The engine (writing the lake), the lake assets, the
loader (creating and filling the copy) and the fingerprint all read this table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa

PG_IDENTIFIER_BYTES = 63  # PostgreSQL cuts longer identifiers (NAMEDATALEN - 1)


class UnsupportedType(Exception):
    """A column whose type no engine and PostgreSQL hold exactly; the message names it."""


@dataclass(frozen=True)
class Mapping:
    lake: str  # the canonical lake Arrow type (a description for the docs table)
    athena: str
    postgres: str  # as PostgreSQL's format_type() spells it (the catalog compares names)
    kind: str  # how the fingerprint renders a value (platform_assets/lake/fingerprint.py)


def mapping(t: pa.DataType, column: str = "?") -> Mapping:
    """The row of the table for a canonical lake type `t` (see `lake_type`)."""
    if pa.types.is_boolean(t):
        return Mapping("bool", "boolean", "boolean", "bool")
    if pa.types.is_int8(t):
        return Mapping("int8", "tinyint", "smallint", "int")
    if pa.types.is_int16(t):
        return Mapping("int16", "smallint", "smallint", "int")
    if pa.types.is_int32(t):
        return Mapping("int32", "int", "integer", "int")
    if pa.types.is_int64(t):
        return Mapping("int64", "bigint", "bigint", "int")
    if pa.types.is_float64(t):
        return Mapping("float64", "double", "double precision", "float")
    if pa.types.is_decimal128(t):
        p, s = t.precision, t.scale
        return Mapping(f"decimal128({p},{s})", f"decimal({p},{s})", f"numeric({p},{s})", "decimal")
    if pa.types.is_date32(t):
        return Mapping("date32", "date", "date", "date")
    if pa.types.is_timestamp(t) and t.unit == "us":
        if t.tz:
            return Mapping(
                "timestamp[us, UTC]", "timestamp", "timestamp with time zone", "timestamptz"
            )
        return Mapping("timestamp[us]", "timestamp", "timestamp without time zone", "timestamp")
    if pa.types.is_string(t):
        return Mapping("string", "string", "text", "text")
    if pa.types.is_binary(t):
        return Mapping("binary", "binary", "bytea", "binary")
    raise UnsupportedType(f"column {column} has type {t}, which has no exact PostgreSQL type")


def lake_type(t: pa.DataType, column: str = "?") -> pa.DataType:
    """The canonical lake type for an Arrow type an engine produced; every conversion is exact
    (widening, re-encoding), so the values stay the same."""
    if pa.types.is_dictionary(t):
        return lake_type(t.value_type, column)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if (
        pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return pa.binary()
    if pa.types.is_uint8(t):
        return pa.int16()
    if pa.types.is_uint16(t):
        return pa.int32()
    if pa.types.is_uint32(t):
        return pa.int64()
    if pa.types.is_uint64(t):
        return pa.decimal128(20, 0)
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return pa.float64()
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_timestamp(t):  # finer than µs is refused by the cast if it would drop digits
        return pa.timestamp("us", tz="UTC" if t.tz else None)
    if pa.types.is_decimal(t) and t.precision <= 38:
        return pa.decimal128(t.precision, t.scale)
    mapping(t, column)  # raises for anything without an exact home
    return t


def lake_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with every column in its canonical lake type."""
    return pa.schema([pa.field(f.name, lake_type(f.type, f.name)) for f in schema])


def cast_batches(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> pa.RecordBatchReader:
    """`batches` read as `schema`: the one place Arrow data is converted to its target types.
    Each cast is exact (`safe`), so a value that would change fails, naming the column; a batch
    already of `schema` passes untouched (metadata is not part of the type)."""
    return pa.RecordBatchReader.from_batches(
        schema,
        (b if b.schema.equals(schema) else b.cast(schema) for b in batches),
    )


def lake_reader(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """An engine's result in its canonical lake types (`reader` itself when it already is)."""
    target = lake_schema(reader.schema)
    return reader if target.equals(reader.schema) else cast_batches(target, reader)


def load_schema(schema: pa.Schema) -> pa.Schema:
    """The Arrow schema sent to PostgreSQL by binary COPY: the lake types, with int8 widened to
    int16 (PostgreSQL has no one-byte integer)."""
    fields = []
    for f in lake_schema(schema):
        t = pa.int16() if pa.types.is_int8(f.type) else f.type
        fields.append(pa.field(f.name, t))
    return pa.schema(fields)


def postgres_type(t: pa.DataType, column: str = "?") -> str:
    return mapping(lake_type(t, column), column).postgres


def athena_type(t: pa.DataType, column: str = "?") -> str:
    return mapping(lake_type(t, column), column).athena


def fingerprint_kind(t: pa.DataType, column: str = "?") -> str:
    return mapping(lake_type(t, column), column).kind


def postgres_columns(schema: pa.Schema) -> tuple[tuple[str, str], ...]:
    """(name, PostgreSQL type) of every column in order: a schema's mapping, done once."""
    return tuple((f.name, postgres_type(f.type, f.name)) for f in schema)


def fingerprint_kinds(schema: pa.Schema) -> list[tuple[str, str]]:
    """(name, fingerprint kind) of every column in order."""
    return [(f.name, fingerprint_kind(f.type, f.name)) for f in schema]


def long_identifiers(names: Iterable[str]) -> list[str]:
    """The names PostgreSQL would cut (over 63 bytes in UTF-8)."""
    return [n for n in names if len(n.encode()) > PG_IDENTIFIER_BYTES]


def from_postgres(pg_type: str) -> pa.DataType:
    """The lake type a copy's column of `pg_type` was made from (the catalog's spelling), so the
    copy's checksums can be computed from the catalog alone."""
    numeric = _NUMERIC.fullmatch(pg_type)
    if numeric:
        return pa.decimal128(int(numeric.group(1)), int(numeric.group(2)))
    for t in SAMPLES:
        if mapping(t).postgres == pg_type:
            return t
    return pa.string()


def schema_from_postgres(columns: Iterable[Sequence[str]]) -> pa.Schema:
    """The lake schema of a copy's (name, PostgreSQL type) columns (`from_postgres` of each)."""
    return pa.schema([pa.field(name, from_postgres(kind)) for name, kind in columns])


SAMPLES = (  # one lake type per row of the table (decimal128 stands for every precision/scale)
    pa.bool_(),
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.float64(),
    pa.decimal128(38, 10),
    pa.date32(),
    pa.timestamp("us"),
    pa.timestamp("us", tz="UTC"),
    pa.string(),
    pa.binary(),
)
_NUMERIC = re.compile(r"numeric\((\d+),(\d+)\)")


def markdown_table() -> str:
    """The mapping as the table docs/DESIGN.md shows (tests keep the two equal)."""
    rows = ["| lake (Arrow/Parquet) | Athena | PostgreSQL | fingerprint |", "|---|---|---|---|"]
    rows += [f"| {m.lake} | {m.athena} | {m.postgres} | {m.kind} |" for m in map(mapping, SAMPLES)]
    return "\n".join(rows)
