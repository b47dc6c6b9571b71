"""Segment checksums agree between DuckDB, PostgreSQL and Athena's SQL (transpiled to DuckDB) on
awkward values, and see changes."""

import datetime as dt

import duckdb
import psycopg
import pyarrow as pa
import pytest
import sqlglot

from platform_assets.serving import loader
from resources.fingerprint import differing_segments, fingerprint, segment_checksum_sql
from resources.fingerprint import segments_from_rows as rows_to_segments


def _table(values: list[float | None]) -> pa.Table:
    n = len(values)
    return pa.table(
        {
            "d": pa.array([dt.date(2013, 1 + i % 12, 1 + i % 28) for i in range(n)], pa.date32()),
            "code": pa.array([None if i % 7 == 0 else f"C{i % 5}" for i in range(n)]),
            "n": pa.array([i * 3 for i in range(n)], pa.int64()),
            "x": pa.array(values, pa.float64()),
        }
    )


# Exact binary halves at the 4th decimal, values whose decimal rendering rounds differently,
# negatives, zero, NULL, large magnitudes.
AWKWARD = [
    14.38475,
    8.63085,
    0.00005,
    -0.00005,
    -2.5e-5,
    0.1 + 0.2,
    1e12 / 3,
    -7.77775,
    0.0,
    None,
    123456.78905,
    2.675,
    1.0005,
    5.55555,
    -0.0,
]


def _duckdb_segments(table: pa.Table, dialect: str = "duckdb"):
    """`dialect`'s checksum SQL run by DuckDB (Athena's after sqlglot transpiled it)."""
    sql = segment_checksum_sql(dialect, "t", table.schema, "d")
    if dialect == "athena":
        sql = sqlglot.transpile(sql, read="trino", write="duckdb")[0]
    con = duckdb.connect()
    con.register("t", table)
    return rows_to_segments(con.execute(sql).fetchall())


def _postgres_segments(serving, table: pa.Table):
    schema = loader.load_schema(table.schema)
    with serving.connect(autocommit=True) as conn:
        conn.execute(loader.create_table_ddl("public", "fp", schema))
    loader.copy_into(serving.conninfo(), "public", "fp", table.to_reader())
    with psycopg.connect(serving.conninfo()) as conn:
        sql = segment_checksum_sql("postgres", "public.fp", schema, "d")
        return rows_to_segments(conn.execute(sql).fetchall())


def test_duckdb_and_postgres_agree_on_awkward_values(serving):
    table = _table(AWKWARD * 20)
    duck = _duckdb_segments(table)
    pg = _postgres_segments(serving, table)
    assert duck == pg == _duckdb_segments(table, "athena")
    assert sum(n for n, _ in duck.values()) == len(table)
    assert fingerprint(duck) == fingerprint(pg)


def test_a_changed_value_names_its_month():
    table = _table(AWKWARD * 4)
    changed = table.set_column(
        3,
        "x",
        pa.array(
            [
                v + 0.001 if i == 13 and v is not None else v
                for i, v in enumerate(table["x"].to_pylist())
            ]
        ),
    )
    before, after = _duckdb_segments(table), _duckdb_segments(changed)
    month = table["d"][13].as_py().strftime("%Y-%m")
    assert differing_segments(before, after) == [month]
    assert fingerprint(before) != fingerprint(after)


def test_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="unknown dialect"):
        segment_checksum_sql("mysql", "t", pa.schema([("d", pa.date32())]), "d")
