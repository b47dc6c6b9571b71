"""The dashboard's login (`dashboard_reader`) can read Gold and the ledger, and change nothing.

The role is created by `ledger.bootstrap` and re-granted at every swap; this runs on a database
whose Gold tables were built and synced by the real assets, then re-synced (forced), so the
grants are checked after a swap too. Read-only holds by privileges, not by a setting: every
denial is tried again after the role turned `default_transaction_read_only` off in a READ WRITE
transaction. Nor can the role take or block the sync's table lock.
"""

from __future__ import annotations

import json
import threading

import psycopg
import pytest

from platform_assets.lake.tables import GoldLake
from platform_assets.serving import ledger, locks
from platform_assets.serving import reader as reader_role
from platform_assets.serving.names import lock_key
from platform_assets.serving.protocol import SyncTransientError, sync_table
from platform_assets.specs import GOLD_BY_NAME, GOLD_TABLES
from resources.sql_engine import DuckDBEngine
from tests.support.dashboard import gold_database
from tests.support.goldctl import goldctl, goldctl_env

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
    # storage and code a reader could otherwise create for itself
    "SELECT lo_from_bytea(0, 'x')",
    "SELECT lo_create(0)",
    "SELECT lo_creat(-1)",
    "CREATE TEMP TABLE scratch (x int)",
    "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE FUNCTION gold.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    # the sync's table lock
    "SELECT 1 FROM platform.sync_locks FOR UPDATE",
    "LOCK TABLE platform.sync_locks IN ACCESS SHARE MODE",
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
    assert reader.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    reader.execute("SET default_transaction_read_only = off")  # the role may; it changes nothing
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied|owner"),
        reader.transaction(),
    ):
        reader.execute("SET TRANSACTION READ WRITE")
        reader.execute(statement)


def test_the_role_is_locked_down_as_the_loader_sees_it(gold, serving):
    built, _ = gold
    with built.connect(autocommit=True) as conn:
        assert reader_role.exposures(conn, built.dashboard_role) == []
    # the missed alarm's side: in a database the platform never set up, the same role can
    with serving.connect(autocommit=True) as conn:
        found = reader_role.exposures(conn, built.dashboard_role)
    assert any("large objects" in f for f in found), found
    assert any("TEMP" in f for f in found), found


def test_goldctl_status_says_whether_the_role_is_locked_down(gold, serving):
    built, lake = gold
    done = goldctl("status", "--json", env=goldctl_env(lake, built))
    assert json.loads(done.stdout)["dashboard_role"]["can_still"] == [], done.stdout
    # a database this login could not lock down (here: one never set up) is a WARN line
    done = goldctl("status", env=goldctl_env(lake, serving))
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("dashboard role"))
    assert "WARN: can still" in line and "large objects" in line, line


def test_a_reader_holding_advisory_locks_does_not_stall_a_sync(reader, gold):
    """The old table lock and the ledger's setup lock, taken by the reader, block nothing."""
    serving, lake = gold
    spec = GOLD_BY_NAME["airport_daily_weather"]
    reader.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock_key(spec.name),))
    reader.execute("SELECT pg_advisory_lock(%s)", (ledger.BOOTSTRAP_LOCK,))
    result = sync_table(
        spec, GoldLake(lake), DuckDBEngine(lake=lake), serving, force=True, log=lambda _: None
    )
    assert result.action == "loaded"


@pytest.mark.parametrize("force", [True, False], ids=["load", "no-op"])
def test_a_held_sync_lock_is_a_bounded_wait_naming_the_holder(gold, force):
    """A load waits to take the lock, a no-op to hold it shared: both give up naming the sync
    that holds it."""
    serving, lake = gold
    spec = GOLD_BY_NAME["airport_daily_weather"]
    impatient = serving.model_copy(update={"sync_lock_wait_s": 1.0})
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.table_lock(serving, spec.name, 10) as conn:
            held.pid = conn.info.backend_pid
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(60)
        with pytest.raises(SyncTransientError) as failed:
            sync_table(
                spec, GoldLake(lake), DuckDBEngine(lake=lake), impatient, force=force, log=print
            )
    finally:
        release.set()
        holder.join(60)
    message = str(failed.value)
    assert f"pid {held.pid}" in message and "gave up after 1 s" in message, message
    assert "retry can succeed" in message


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
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM gold.airport_daily_weather")
