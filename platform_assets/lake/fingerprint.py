"""Segment checksums that the lake engine and PostgreSQL compute the same way.

Each value is rendered as an exact, canonical text that DuckDB, PostgreSQL and Athena (Trino)
all produce for it, the texts of a row are joined, hashed with md5, and the first 32 bits are
summed per segment (a month of the table's date column). Both sides run the query themselves,
so a mismatch means the data differs, and the segments that differ say where.

The canonical texts have no blind spots: NULL is `N` and no value renders as `N` (text is
length-prefixed, `3:abc`, so no string can pose as NULL or as a column boundary); a double is
its 64 IEEE bits in hex (NaN, the infinities, -0.0 and the last bit all count); a decimal is
its exact digits at the column's scale; a timestamp is written to the microsecond, a
timestamptz in UTC whatever the session's or the process's time zone; binary is hex; a date
is its day number, so PostgreSQL's `DateStyle` does not matter either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from platform_assets.identifiers import quote_idents
from platform_assets.lake.types import fingerprint_kinds

DIALECTS = ("athena", "duckdb", "postgres")
VERSION = 2  # of the rendering below; segments computed by another version are recomputed
NULL_TEXT = "N"

# The canonical text of one non-NULL value, per dialect and kind; {c} is the quoted column.
_TS = "YYYY-MM-DD HH24:MI:SS.US"
_TRINO_TS = "%Y-%m-%d %H:%i:%s.%f"
_DUCK_TS = "%Y-%m-%d %H:%M:%S.%f"
CANONICAL = {
    "postgres": {
        "int": "CAST({c} AS TEXT)",
        "bool": "CAST({c} AS TEXT)",
        "decimal": "CAST({c} AS TEXT)",
        "float": "ENCODE(FLOAT8SEND({c}), 'hex')",  # the copy's doubles are all float8
        "date": "CAST({c} - DATE '1970-01-01' AS TEXT)",
        "timestamp": f"TO_CHAR({{c}}, '{_TS}')",
        "timestamptz": f"TO_CHAR({{c}} AT TIME ZONE 'UTC', '{_TS}')",
        "text": "CAST(LENGTH({c}) AS TEXT) || ':' || {c}",
        "binary": "ENCODE({c}, 'hex')",
    },
    "duckdb": {
        "int": "CAST({c} AS VARCHAR)",
        "bool": "CAST({c} AS VARCHAR)",
        "decimal": "CAST({c} AS VARCHAR)",
        "float": "LPAD(LOWER(HEX(CAST(CAST(CAST({c} AS DOUBLE) AS BIT) AS BIGINT))), 16, '0')",
        "date": "CAST({c} - DATE '1970-01-01' AS VARCHAR)",
        "timestamp": f"STRFTIME({{c}}, '{_DUCK_TS}')",
        "timestamptz": f"STRFTIME({{c}} AT TIME ZONE 'UTC', '{_DUCK_TS}')",
        "text": "CAST(LENGTH({c}) AS VARCHAR) || ':' || {c}",
        "binary": "LOWER(HEX({c}))",
    },
    "athena": {
        "int": "CAST({c} AS VARCHAR)",
        "bool": "CAST({c} AS VARCHAR)",
        "decimal": "CAST({c} AS VARCHAR)",
        "float": "LOWER(TO_HEX(TO_IEEE754_64(CAST({c} AS DOUBLE))))",
        "date": "CAST(DATE_DIFF('day', CAST('1970-01-01' AS DATE), {c}) AS VARCHAR)",
        "timestamp": f"DATE_FORMAT({{c}}, '{_TRINO_TS}')",
        "timestamptz": f"DATE_FORMAT({{c}} AT TIME ZONE 'UTC', '{_TRINO_TS}')",
        "text": "CAST(LENGTH({c}) AS VARCHAR) || ':' || {c}",
        "binary": "LOWER(TO_HEX({c}))",
    },
}


def _canonical(dialect: str, quoted: str, kind: str) -> str:
    return f"COALESCE({CANONICAL[dialect][kind].format(c=quoted)}, '{NULL_TEXT}')"


def _hash32(dialect: str, text: str) -> str:
    if dialect == "postgres":
        return f"(('x' || SUBSTR(MD5({text}), 1, 8))::BIT(32)::BIGINT)"
    return f"CAST('0x' || SUBSTR(MD5({text}), 1, 8) AS BIGINT)"


_HEX = "0123456789abcdef"


def _athena_checksum_sql(segment: str, row_text: str, relation: str) -> str:
    """Trino's FROM_BASE(hex, 16) has no DuckDB counterpart, so sqlglot cannot carry it over and
    the statement Athena gets could not be run anywhere else. The 8 hex digits are summed one by
    one with STRPOS instead: plain Trino that sqlglot parses and transpiles, so tests run the
    very statement Athena receives (tests/test_athena_sql.py)."""
    digits = " + ".join(
        f"(STRPOS('{_HEX}', SUBSTR(h, {i + 1}, 1)) - 1) * {16 ** (7 - i)}" for i in range(8)
    )
    return (
        f"SELECT segment, COUNT(*) AS row_count, SUM({digits}) AS checksum FROM ("
        f"SELECT {segment} AS segment, SUBSTR(LOWER(TO_HEX(MD5(TO_UTF8({row_text})))), 1, 8) AS h "
        f"FROM {relation}) AS hashed GROUP BY 1 ORDER BY 1"
    )


def _postgres_checksum_sql(col: str, kind: str | None, row_text: str, relation: str) -> str:
    """Grouped by the first of the month, formatted once per group: TO_CHAR per row cost more
    than the hash, and CAST(date AS TEXT) would follow the session's DateStyle. A date column
    is grouped by its own value first (a few thousand days at most) and the days are folded
    into months: the month expression per row cost ~5 % of the scan (1 M rows)."""
    month = "{c} - CAST(DATE_PART('day', {c}) AS INTEGER) + 1"
    hashed = _hash32("postgres", "r")
    if kind != "date":
        return (
            "SELECT TO_CHAR(m, 'YYYY-MM') AS segment, COUNT(*) AS row_count, "
            f"SUM({hashed}) AS checksum FROM (SELECT {month.format(c=col)} AS m, {row_text} AS r "
            f"FROM {relation}) AS rows GROUP BY m ORDER BY 1"
        )
    return (
        f"SELECT TO_CHAR({month.format(c='d')}, 'YYYY-MM') AS segment, SUM(n) AS row_count, "
        f"SUM(h) AS checksum FROM (SELECT d, COUNT(*) AS n, SUM({hashed}) AS h FROM ("
        f"SELECT {col} AS d, {row_text} AS r FROM {relation}) AS rows GROUP BY d) AS days "
        "GROUP BY 1 ORDER BY 1"
    )


def segment_checksum_sql(
    dialect: str, relation: str, schema: pa.Schema, segment_column: str
) -> str:
    """SELECT segment, rows, checksum FROM relation GROUP BY segment (in `dialect`)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}")
    kinds = fingerprint_kinds(schema)
    *quoted, col = quote_idents([*(name for name, _ in kinds), segment_column])
    parts = [_canonical(dialect, q, kind) for q, (_, kind) in zip(quoted, kinds, strict=True)]
    row_text = " || '|' || ".join(parts)
    if dialect == "postgres":
        return _postgres_checksum_sql(col, dict(kinds).get(segment_column), row_text, relation)
    segment = f"SUBSTR(CAST({col} AS VARCHAR), 1, 7)"
    if dialect == "athena":
        return _athena_checksum_sql(segment, row_text, relation)
    return (
        f"SELECT {segment} AS segment, COUNT(*) AS row_count, "
        f"SUM({_hash32(dialect, row_text)}) AS checksum "
        f"FROM {relation} GROUP BY 1 ORDER BY 1"
    )


Segments = dict[str, tuple[int, int]]


def segments_from_rows(rows: Iterable[Sequence[Any]]) -> Segments:
    return {str(seg): (int(n), int(chk)) for seg, n, chk in rows}


def fingerprint(segments: Segments) -> str:
    """One short string for the whole table: equal segments give equal fingerprints."""
    digest = hashlib.sha256()
    for seg in sorted(segments):
        n, chk = segments[seg]
        digest.update(f"{seg}:{n}:{chk}\n".encode())
    return digest.hexdigest()[:16]


def differing_segments(expected: Segments, actual: Segments) -> list[str]:
    return sorted(s for s in set(expected) | set(actual) if expected.get(s) != actual.get(s))
