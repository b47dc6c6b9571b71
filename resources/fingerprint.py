"""Segment checksums that the lake engine and PostgreSQL compute the same way.

Each row is rendered as canonical text (doubles as integer ten-thousandths, dates ISO, NULL as
`\\N`), hashed with md5, and the first 32 bits are summed per segment (a month of the table's
date column). Both sides run the query themselves, so a mismatch means the data differs, and
the segments that differ say where.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from resources.identifiers import quote_ident

DIALECTS = ("athena", "duckdb", "postgres")


def column_kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
        return "int"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    return "string"


def _canonical(dialect: str, name: str, kind: str) -> str:
    col = quote_ident(name)
    if kind == "float":
        # Scaled and floored in IEEE double arithmetic, which every engine does identically;
        # rounding through a decimal type would differ at halves (PostgreSQL converts float8
        # to numeric via 15 significant digits).
        text_type = "TEXT" if dialect == "postgres" else "VARCHAR"
        text = f"CAST(CAST(FLOOR({col} * 10000 + 0.5) AS BIGINT) AS {text_type})"
    elif kind == "timestamp":
        text = (
            f"TO_CHAR({col}, 'YYYY-MM-DD HH24:MI:SS')"
            if dialect == "postgres"
            else f"SUBSTR(CAST({col} AS VARCHAR), 1, 19)"
        )
    else:
        text = f"CAST({col} AS {'TEXT' if dialect == 'postgres' else 'VARCHAR'})"
    return f"COALESCE({text}, '\\N')"


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


def segment_checksum_sql(
    dialect: str, relation: str, schema: pa.Schema, segment_column: str
) -> str:
    """SELECT segment, rows, checksum FROM relation GROUP BY segment (in `dialect`)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}")
    parts = [_canonical(dialect, f.name, column_kind(f.type)) for f in schema]
    row_text = " || '|' || ".join(parts)
    text_type = "TEXT" if dialect == "postgres" else "VARCHAR"
    segment = f"SUBSTR(CAST({quote_ident(segment_column)} AS {text_type}), 1, 7)"
    if dialect == "athena":
        return _athena_checksum_sql(segment, row_text, relation)
    return (
        f"SELECT {segment} AS segment, COUNT(*) AS row_count, "
        f"SUM({_hash32(dialect, row_text)}) AS checksum "
        f"FROM {relation} GROUP BY 1 ORDER BY 1"
    )


Segments = dict[str, tuple[int, int]]


def segments_from_rows(rows) -> Segments:
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
