"""The dashboard's login (`dashboard_reader`) can read Gold and the ledger, and change nothing.

The role is created by `ledger.bootstrap` and re-granted at every swap; this runs on a database
whose Gold tables were built and synced by the real assets, then re-synced (forced), so the
grants are checked after a swap too.
"""

from __future__ import annotations

import psycopg
import pytest

from platform_assets.serving.protocol import sync_table
from platform_assets.specs import GOLD_BY_NAME, GOLD_TABLES
from resources.lake_tables import GoldLake
from resources.sql_engine import DuckDBEngine
from tests.test_dashboard_support import gold_database

DENIED = [
    "INSERT INTO gold.airport_daily_weather (flight_date, origin, flights) "
    "VALUES ('2031-01-01', 'XXX', 1)",
    "UPDATE gold.carrier_daily_performance SET flights = 0",
    "DELETE FROM gold.route_monthly_performance",
    "TRUNCATE gold.airport_daily_weather",
    "DROP TABLE gold.airport_daily_weather",
    "ALTER TABLE gold.airport_daily_weather ADD COLUMN x int",
    "CREATE TABLE gold.evil (x int)",
    "CREATE TABLE public.evil (x int)",
    "CREATE TABLE platform.evil (x int)",
    "CREATE SCHEMA evil",
    "CREATE INDEX ON gold.airport_daily_weather (flights)",
    "INSERT INTO platform.sync_ledger (table_name, lake_version, lake_token, row_count, "
    "fingerprint, lake_created_at, duration_s) VALUES ('x', 'v', 't', 0, 'f', now(), 0)",
    "UPDATE platform.sync_ledger SET lake_version = 'forged'",
    "DELETE FROM platform.sync_ledger",
    "DROP TABLE platform.sync_ledger",
]


@pytest.fixture(scope="module")
def gold(pg_url, silver_lake_dir, tmp_path_factory):
    return gold_database(pg_url, silver_lake_dir, tmp_path_factory.mktemp("dash"))


@pytest.fixture
def reader(gold):
    serving, _ = gold
    with psycopg.connect(serving.dashboard_url(), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == serving.dashboard_role
        yield conn


@pytest.mark.parametrize("statement", DENIED)
def test_reader_cannot_write_or_create(reader, statement):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied|owner"):
        reader.execute(statement)


def test_reader_can_select_gold_and_the_ledger(reader, gold):
    serving, _ = gold
    for spec in GOLD_TABLES:
        assert reader.execute(f"SELECT count(*) FROM gold.{spec.name}").fetchone()[0] > 0
    tables = {r[0] for r in reader.execute("SELECT table_name FROM platform.sync_ledger")}
    assert tables == {spec.name for spec in GOLD_TABLES}
    assert reader.execute("SELECT count(*) FROM platform.sync_history").fetchone()[0] > 0
    role = reader.execute(
        "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert role == (False, False, False)


def test_grants_survive_a_forced_resync(gold):
    serving, lake = gold
    spec = GOLD_BY_NAME["airport_daily_weather"]
    result = sync_table(
        spec, GoldLake(lake), DuckDBEngine(lake=lake), serving, force=True, log=lambda _: None
    )
    assert result.action == "loaded" and result.row_count > 0
    with psycopg.connect(serving.dashboard_url(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM gold.airport_daily_weather").fetchone()[0] == (
            result.row_count
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM gold.airport_daily_weather")
