"""Athena's SQL checked without Athena.

Every statement the Athena engine sends is captured from its own code paths (pyathena against
moto's Athena API on loopback, which records each query; the lake checks through the function
that builds them) rather than retyped, and then:

- each one parses with sqlglot in the dialect Athena runs it in, without losing a token and without
  a function sqlglot does not know: Trino for SELECTs and CTAS; Athena's Hive side for the DDL
  (`DROP TABLE`, `CREATE EXTERNAL TABLE`, `ALTER TABLE ... SET LOCATION`). docs/DESIGN.md lists
  what stays unverified until it meets Athena (`MSCK REPAIR TABLE`, which sqlglot only knows as a
  command, is not sent: the Bronze external tables are unpartitioned);
- a partitioned CTAS names its partition columns last in the SELECT, as Athena requires;
- the Athena segment checksum SQL, transpiled by sqlglot to DuckDB and run on real Gold data,
  gives the segments that DuckDB's own checksum SQL and PostgreSQL give.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from platform_assets.gold_assets.lake_asset import _lake_check_results
from platform_assets.lake.fingerprint import segment_checksum_sql, segments_from_rows
from platform_assets.lake.tables import GoldLake, version_prefix
from platform_assets.lake_assets import SILVER_PARTITIONS
from platform_assets.serving import loader
from platform_assets.serving.protocol import postgres_segments
from platform_assets.sources import SOURCE_TABLES
from platform_assets.specs import GOLD_TABLES, SQL_DIR
from resources.sql_engine import TRINO_MACROS, DuckDBEngine
from resources.storage import LakeStorage
from tests.conftest import gold_built

HIVE_DDL = (exp.Alter,)  # Athena runs DDL on its Hive engine; sqlglot's "athena" reads it so


@pytest.fixture(scope="module")
def gold(silver_lake_dir, pg_url, tmp_path_factory):
    """Gold built by the local engine into a private lake copy and synced into PostgreSQL."""
    with gold_built(silver_lake_dir, pg_url, tmp_path_factory.mktemp("athena-sql")) as built:
        yield built


class _CheckRecorder:
    """Stands in for the engine where moto cannot answer (results are read back from S3):
    keeps the lake checks' SQL exactly as `_lake_check_results` builds it."""

    def __init__(self):
        self.sent: list[str] = []

    def query(self, sql: str, bindings=None) -> pa.Table:
        self.sent.append(sql)
        return pa.table({"n": [0]})


def _gold_schema(lake: LakeStorage, table: str) -> pa.Schema:
    state = GoldLake(lake).current_state(table)
    return loader.load_schema(lake.dataset(state.parquet_keys).schema)


def athena_statements(engine, local: LakeStorage, sent) -> list[tuple[str, str]]:
    """(what, statement) for everything the platform makes Athena run, in order."""
    out: list[tuple[str, str]] = []
    seen = 0

    def take(what: str) -> None:
        nonlocal seen
        new = sent()[seen:]
        seen += len(new)
        out.extend((what, sql) for sql in new)

    for table in SOURCE_TABLES:  # as the Bronze assets call it (unpartitioned: no MSCK REPAIR)
        schema = local.dataset(f"bronze/{table}").schema
        engine.register_external(f"bronze.{table}", f"bronze/{table}", schema)
        take(f"bronze.{table} external table")
    for path in sorted((SQL_DIR / "silver").glob("*.sql")):
        table = path.stem
        sql, parts = path.read_text(), SILVER_PARTITIONS.get(table)
        engine.create_table_as(f"silver.{table}", sql, f"silver/{table}", parts)
        take(f"silver.{table} CTAS")
    checks = _CheckRecorder()
    for spec in GOLD_TABLES:
        location = version_prefix(spec.name, "v1")
        engine.create_table_as(f"gold.{spec.name}__build", spec.sql, location)
        take(f"gold.{spec.name} CTAS")
        schema = _gold_schema(local, spec.name)
        for relation in (f"gold.{spec.name}__build", f"gold.{spec.name}"):
            engine.segment_checksums(relation, schema, spec.segment_column)
        take(f"gold.{spec.name} segment checksums")
        engine.publish(f"gold.{spec.name}", location)
        take(f"gold.{spec.name} publish")
        _lake_check_results(checks, spec, f"gold.{spec.name}__build", location, rows=1)
    out.extend(("gold lake check", sql) for sql in checks.sent)
    return out


def _tokens(sql: str, dialect: str) -> Counter:
    """The statement's tokens as a multiset: a reordering (`NOT x IS NULL`) keeps it, a
    dropped clause (Trino's reading of `SET LOCATION '...'`) does not."""
    return Counter(t.text.lower() for t in Dialect.get_or_raise(dialect).tokenize(sql))


def _athena_parse(sql: str) -> tuple[exp.Expression, str]:
    """Parse it where Athena runs it: queries and CTAS on Trino, other DDL on Hive (sqlglot's
    "athena" dialect routes the same way). Nothing may be dropped or left unknown."""
    [tree] = sqlglot.parse(sql, read="athena")
    assert not isinstance(tree, exp.Command), f"sqlglot only recognises a command: {sql}"
    is_query = isinstance(tree, exp.Query) or (
        isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Query)
    )
    dialect = "trino" if is_query else "athena"
    if is_query:
        [tree] = sqlglot.parse(sql, read="trino")
    regenerated, original = _tokens(tree.sql(dialect), dialect), _tokens(sql, dialect)
    assert regenerated == original, (
        f"{original - regenerated} lost, {regenerated - original}: {sql}"
    )
    unknown = sorted({f.name for f in tree.find_all(exp.Anonymous)} - set(TRINO_MACROS))
    assert not unknown, f"functions sqlglot does not know: {unknown}\n{sql}"
    return tree, dialect


def test_every_athena_statement_parses(athena, gold):  # noqa: F811 (the fixture)
    engine, _, _, sent = athena
    local, _ = gold
    statements = athena_statements(engine, local, sent)
    dialects = {}
    for what, sql in statements:
        tree, dialect = _athena_parse(sql)
        dialects.setdefault(dialect, set()).add(type(tree).__name__)
        parts = SILVER_PARTITIONS.get(what.removeprefix("silver.").removesuffix(" CTAS"))
        if what.startswith("silver.") and parts and isinstance(tree, exp.Create):
            names = [e.alias_or_name for e in tree.expression.selects]
            assert names[-len(parts) :] == parts, f"{what}: partition columns must come last"
    assert dialects == {"trino": {"Create", "Select"}, "athena": {"Create", "Drop", "Alter"}}
    whats = {what.split(" ", 1)[1] for what, _ in statements}
    assert whats == {
        "external table",
        "CTAS",
        "segment checksums",
        "publish",
        "lake check",
    }
    assert len(statements) >= 5 + 2 * 5 + 3 * 5 + 6


def test_athena_checksums_transpiled_to_duckdb_match_duckdb_and_postgres(gold):
    lake, serving = gold
    engine = DuckDBEngine(lake=lake)
    for spec in GOLD_TABLES:
        schema = _gold_schema(lake, spec.name)
        relation = f"gold.{spec.name}"
        athena_sql = segment_checksum_sql("athena", relation, schema, spec.segment_column)
        assert "FROM_BASE" not in athena_sql
        duckdb_sql = sqlglot.transpile(athena_sql, read="trino", write="duckdb")[0]
        con = engine._connect(duckdb_sql)
        try:
            transpiled = segments_from_rows(con.execute(duckdb_sql).fetchall())
        finally:
            con.close()
        native = engine.segment_checksums(relation, schema, spec.segment_column)
        with serving.connect(autocommit=True) as conn:
            pg = postgres_segments(conn, relation, schema, spec.segment_column)
        assert len(native) >= 12 and sum(n for n, _ in native.values()) > 1000
        assert transpiled == native == pg, spec.name
