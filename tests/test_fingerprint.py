"""Segment checksums agree between DuckDB, PostgreSQL and Athena's SQL (transpiled to DuckDB) on
awkward values and on every type (tests/type_matrix.py), whatever the time zones, and see the
smallest change of any cell."""

import datetime as dt
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pytest
import sqlglot

from platform_assets.lake.fingerprint import differing_segments, fingerprint, segment_checksum_sql
from platform_assets.lake.fingerprint import segments_from_rows as rows_to_segments
from platform_assets.lake.types import markdown_table
from platform_assets.serving import loader
from resources.sql_engine import TRINO_MACROS
from tests import type_matrix


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


def _duckdb_segments(table: pa.Table, dialect: str = "duckdb", time_zone: str = "UTC"):
    """`dialect`'s checksum SQL run by DuckDB (Athena's after sqlglot transpiled it)."""
    sql = segment_checksum_sql(dialect, "t", table.schema, "d")
    if dialect == "athena":
        sql = sqlglot.transpile(sql, read="trino", write="duckdb")[0]
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{time_zone}'")
    for macro in TRINO_MACROS.values():
        con.execute(macro)
    con.register("t", table)
    return rows_to_segments(con.execute(sql).fetchall())


def _postgres_segments(serving, table: pa.Table, **session):
    schema = loader.load_schema(table.schema)
    with serving.connect(autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.fp")
        conn.execute(loader.create_table_ddl("public", "fp", schema))
    loader.copy_into(serving.conninfo(), "public", "fp", table.to_reader())
    with psycopg.connect(serving.conninfo()) as conn:
        for setting, value in session.items():
            conn.execute(f"SET {setting} = '{value}'")
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


def test_every_type_checksums_the_same_on_every_engine_and_zone(serving):
    table = type_matrix.table()
    duck = _duckdb_segments(table)
    assert len(duck) == type_matrix.ROWS and sum(n for n, _ in duck.values()) == len(table)
    assert _duckdb_segments(table, "athena") == duck
    assert _duckdb_segments(table, "duckdb", "Asia/Kathmandu") == duck
    assert _duckdb_segments(table, "athena", "America/St_Johns") == duck
    assert _postgres_segments(serving, table) == duck
    odd = {"TimeZone": "America/St_Johns", "DateStyle": "SQL, DMY", "extra_float_digits": "-3"}
    assert _postgres_segments(serving, table, **odd) == duck


def test_the_smallest_change_of_any_cell_names_its_month():
    table = type_matrix.table()
    before = _duckdb_segments(table)
    for column in type_matrix.COLUMNS:
        arrow_type = table.schema.field(column).type
        for i in range(len(type_matrix.COLUMNS[column][2])):  # every value of the column once
            values = table[column].to_pylist()
            changed = type_matrix.smallest_change(column, values[i])
            values[i] = changed
            altered = table.set_column(
                table.schema.get_field_index(column), column, pa.array(values, arrow_type)
            )
            after = _duckdb_segments(altered)
            assert differing_segments(before, after) == [type_matrix.month(i)], (column, i)


def test_the_design_doc_shows_the_mapping_the_code_uses():
    design = (Path(__file__).resolve().parent.parent / "docs" / "DESIGN.md").read_text()
    assert markdown_table() in design
