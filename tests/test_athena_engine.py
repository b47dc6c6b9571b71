"""The production engine's code path: pyathena against moto's Athena API on loopback.

moto accepts any SQL and returns empty results, so these tests pin what the platform sends to
Athena (CTAS with external_location, DDL, repointing) and that query ids come back; the SQL's
semantics are exercised by DuckDB running the same statements in the other tests.
"""

import pyarrow as pa
import pytest

from tests.conftest import BUCKET


def test_ctas_writes_into_an_emptied_external_location(athena):
    engine, lake, prefix, sent = athena
    lake.write_bytes("gold/t/version=v1/stale.parquet", b"old")
    stats = engine.create_table_as(
        "gold.t__build", "SELECT 1 AS x, 2013 AS year", "gold/t/version=v1", ["year"]
    )
    queries = sent()
    assert queries[0] == "DROP TABLE IF EXISTS prod_gold.t__build"
    ctas = queries[1]
    assert ctas.startswith("CREATE TABLE prod_gold.t__build WITH (")
    assert f"external_location = 's3://{BUCKET}/{prefix}/gold/t/version=v1/'" in ctas
    assert "format = 'PARQUET'" in ctas
    assert "partitioned_by = ARRAY['year']" in ctas
    assert ctas.endswith("AS\nSELECT 1 AS x, 2013 AS year")
    assert stats.engine == "athena" and len(stats.query_id) >= 32
    assert lake.list_keys("gold/t/version=v1") == []  # CTAS needs an empty location


def test_external_tables_are_declared_with_athena_types(athena):
    engine, _, prefix, sent = athena
    schema = pa.schema(
        [
            ("carrier", pa.string()),
            ("flights", pa.int64()),
            ("delay", pa.float64()),
            ("day", pa.date32()),
            ("year", pa.int64()),
        ]
    )
    engine.register_external("bronze.flights", "bronze/flights", schema, partitioned_by=["year"])
    ddl, repair = sent()
    assert ddl == (
        "CREATE EXTERNAL TABLE IF NOT EXISTS prod_bronze.flights (`carrier` string, "
        "`flights` bigint, `delay` double, `day` date) PARTITIONED BY (`year` bigint) "
        f"STORED AS PARQUET LOCATION 's3://{BUCKET}/{prefix}/bronze/flights/'"
    )
    assert repair == "MSCK REPAIR TABLE prod_bronze.flights"


def test_external_table_columns_are_quoted_for_hive(athena):
    """Athena's DDL is Hive's: a backtick inside a column name is doubled, not left to end it."""
    engine, _, prefix, sent = athena
    engine.register_external("bronze.odd", "bronze/odd", pa.schema([("a`b", pa.string())]))
    [ddl] = sent()
    assert ddl.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS prod_bronze.odd (`a``b` string) ")


def test_publish_repoints_the_served_table(athena):
    engine, _, prefix, sent = athena
    engine.publish("gold.t", "gold/t/version=v2")
    assert sent() == [
        f"ALTER TABLE prod_gold.t SET LOCATION 's3://{BUCKET}/{prefix}/gold/t/version=v2/'"
    ]


def test_bindings_hold_only_for_tables_the_engine_placed_there(athena):
    """Athena reads tables, not folders: a binding to the location the engine's own CTAS wrote
    is honoured (the table reads exactly those files); any other binding is refused, by name,
    before a statement is sent, instead of silently reading other files."""
    engine, _, _, sent = athena
    engine.create_table_as("gold.t__build", "SELECT 1 AS x", "gold/t/version=v1")
    before = len(sent())
    schema = pa.schema([("x", pa.int64())])
    engine.segment_checksums("gold.t__build", schema, "x", "gold/t/version=v1")
    assert len(sent()) == before + 1 and "prod_gold.t__build" in sent()[-1]
    with pytest.raises(ValueError, match=r"cannot bind gold\.t__build to lake location 'gold/t/v"):
        engine.query("SELECT 1 FROM gold.t__build", {"gold.t__build": "gold/t/version=v2"})
    with pytest.raises(ValueError, match=r"cannot bind gold\.u to lake location"):
        engine.segment_checksums("gold.u", schema, "x", "gold/u/version=v1")
    assert len(sent()) == before + 1  # nothing refused reached Athena
