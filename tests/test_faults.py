"""Faults heal by themselves or are refused with a named reason, one table at a time.

Each fault is made for real: a user's view, grant and index on the copy; a bad file or manifest
in one table's lake location; `kill -9` of a `goldctl sync` held at a pause point; two syncs of
one table at once under readers. Each test asserts what the copy holds, what the ledger says,
what is left behind and what the user was told.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import uuid

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from platform_assets.keys import rds_key
from platform_assets.lake.tables import MANIFEST, GoldLake
from platform_assets.serving.pausepoints import POINTS
from platform_assets.serving.protocol import SyncRefused
from platform_assets.specs import GOLD_BY_NAME, GOLD_TABLES
from platform_assets.status import table_statuses
from tests.conftest import materialize, platform_resources
from tests.support.copies import (
    Reader,
    copy_status,
    count_and_sum,
    ledger_row,
    query,
    stage_tables,
    sync_spec,
)
from tests.support.goldctl import goldctl, goldctl_env, paused_goldctl, wait_for
from tests.support.in_process import tick
from tests.support.lake_edits import add_outside_file, current_table, rewrite_table

WEATHER = GOLD_BY_NAME["airport_daily_weather"]
CARRIER = GOLD_BY_NAME["carrier_daily_performance"]
GOLD = "key:lake/gold/* or key:rds/gold/*"


@pytest.fixture
def platform(local_lake, serving):
    """Every Gold table built in the lake and synced to RDS."""
    assert materialize(GOLD, platform_resources(local_lake, serving)).success
    return local_lake, serving


# ---- 1. user objects survive ---------------------------------------------------------------------


@pytest.mark.parametrize("spec", [WEATHER, CARRIER], ids=lambda s: s.name)
def test_user_views_grants_and_indexes_survive_every_sync(spec, platform):
    lake, serving = platform
    t, role = spec.name, f"analyst_{uuid.uuid4().hex[:6]}"
    with serving.connect(autocommit=True) as conn:
        conn.execute("CREATE SCHEMA analytics")
        conn.execute(
            f"CREATE VIEW analytics.busy AS SELECT flight_date, flights, cancelled FROM gold.{t} "
            "WHERE flights > 10"
        )
        conn.execute(f"CREATE VIEW gold.{t}_totals AS SELECT count(*) AS n FROM gold.{t}")
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA gold, analytics TO {role}")
        conn.execute(f"GRANT SELECT ON gold.{t} TO {role}")
        conn.execute(f"CREATE INDEX users_flights_idx ON gold.{t} (flights)")
    n = count_and_sum(serving, spec)[0]

    added, _ = add_outside_file(lake, t, rows=5)  # a plain sync with new data
    assert sync_spec(lake, serving, spec).action == "loaded"
    for _ in range(2):
        assert sync_spec(lake, serving, spec, force=True).action == "loaded"

    assert query(serving, f"SELECT n FROM gold.{t}_totals") == [(n + added,)]  # new data
    assert query(serving, "SELECT count(*) FROM analytics.busy")[0][0] > 0
    assert query(serving, "SELECT has_table_privilege(%s, %s, 'SELECT')", (role, f"gold.{t}"))[0][0]
    units = query(
        serving,
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        (f"gold.{t}",),
    )[0][0]
    index_parts = query(
        serving,
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'gold.users_flights_idx'::regclass",
    )[0][0]
    assert units == (12 if spec.partitioned else 1) and index_parts == units  # on every unit
    assert copy_status(lake, serving, spec).in_sync

    # a lake change the view cannot survive (it reads `cancelled`) is refused, naming the view
    before, row = count_and_sum(serving, spec), ledger_row(serving, spec)
    table = current_table(lake, spec)
    rewrite_table(lake, spec, table.drop_columns(["cancelled"]))
    with pytest.raises(SyncRefused, match=r"analytics\.busy reads cancelled"):
        sync_spec(lake, serving, spec)
    assert count_and_sum(serving, spec) == before and ledger_row(serving, spec) == row
    assert query(serving, f"SELECT count(cancelled) FROM gold.{t}")[0][0] == before[0]
    assert stage_tables(serving) == []
    assert "analytics.busy" in copy_status(lake, serving, spec).reason
    with serving.connect(autocommit=True) as conn:  # the analyst drops the view: next sync heals
        conn.execute("DROP VIEW analytics.busy")
    assert sync_spec(lake, serving, spec).schema_change.dropped == ("cancelled",)
    assert copy_status(lake, serving, spec).in_sync
    assert query(serving, f"SELECT n FROM gold.{t}_totals") == [(before[0],)]


# ---- 2. a fault in one table's lake location stays with that table ------------------------------


def _write(lake, key: str, data: bytes) -> None:
    with lake.filesystem.open_output_stream(lake.path(key)) as out:
        out.write(data)


def _break(lake, spec, fault: str) -> str:
    """Make `fault` in `spec`'s lake location; returns what the reason must name."""
    state = GoldLake(lake).current_state(spec.name)
    folder, manifest = state.manifest.location, f"gold/{spec.name}/{MANIFEST}"
    if fault == "truncated_file":
        with lake.filesystem.open_input_file(lake.path(state.parquet_keys[0])) as f:
            raw = f.read()
        _write(lake, f"{folder}/part-truncated.parquet", raw[: len(raw) // 2])
        return "part-truncated.parquet"
    if fault == "garbage_file":
        _write(lake, f"{folder}/part-garbage.parquet", b"these are not the bytes you want" * 9)
        return "part-garbage.parquet"
    if fault == "foreign_schema":
        with lake.filesystem.open_output_stream(lake.path(f"{folder}/part-other.parquet")) as out:
            pq.write_table(pa.table({"a": [1, 2], "b": ["x", None]}), out)
        return "part-other.parquet"
    if fault == "missing_manifest":
        lake.filesystem.delete_file(lake.path(manifest))
        return f"{MANIFEST} is missing"
    if fault == "garbled_manifest":
        _write(lake, manifest, b'{"table": "nope", ')
        return f"{MANIFEST} is not a valid manifest"
    raise ValueError(fault)


FAULTS = (
    "truncated_file",
    "garbage_file",
    "foreign_schema",
    "missing_manifest",
    "garbled_manifest",
)


@pytest.mark.parametrize("fault", FAULTS)
def test_each_lake_fault_is_named_for_its_table_and_refused(fault, platform):
    lake, serving = platform
    served = count_and_sum(serving, WEATHER)
    named = _break(lake, WEATHER, fault)
    with serving.connect(autocommit=True) as conn:
        statuses = {s.table: s for s in table_statuses(list(GOLD_TABLES), GoldLake(lake), conn)}
    broken = statuses.pop(WEATHER.name)
    assert not broken.in_sync and broken.severity == "error" and named in broken.reason
    assert all(s.in_sync for s in statuses.values())
    with pytest.raises(SyncRefused, match=re.escape(named)):
        sync_spec(lake, serving, WEATHER)
    assert count_and_sum(serving, WEATHER) == served


@pytest.mark.parametrize("fault", ["garbage_file", "garbled_manifest"])  # a file, a manifest
def test_a_broken_lake_table_is_reported_alone_and_the_others_go_on(fault, platform):
    lake, serving = platform
    served = count_and_sum(serving, WEATHER)
    named = _break(lake, WEATHER, fault)
    added, _ = add_outside_file(lake, CARRIER.name, rows=3)  # another table lags meanwhile
    env = goldctl_env(lake, serving)

    # goldctl status: every table listed, the fault named, exit 3
    done = goldctl("status", "--json", env=env)
    assert done.returncode == 3, done.stderr
    report = {t["table"]: t for t in json.loads(done.stdout)["tables"]}
    assert set(report) == {s.name for s in GOLD_TABLES}
    assert not report[WEATHER.name]["in_sync"] and named in report[WEATHER.name]["reason"]
    assert report[WEATHER.name]["severity"] == "error"
    assert not report[CARRIER.name]["in_sync"] and "lake has" in report[CARRIER.name]["reason"]
    assert report["route_monthly_performance"]["in_sync"]
    text = goldctl("status", env=env)
    assert text.returncode == 3 and named in text.stdout and "Traceback" not in text.stderr

    # the sensor logs the fault and requests the other table's sync
    with dg.instance_for_test() as instance:
        result = tick(instance, platform_resources(lake, serving), cursor=None)
    assert [r.asset_selection for r in result.run_requests] == [[rds_key(CARRIER.name)]]

    # the RDS check fails with the reason; the run refuses; the old copy keeps serving
    run = materialize(
        f"key:rds/gold/{WEATHER.name}", platform_resources(lake, serving), raise_on_error=False
    )
    assert not run.success
    checks = {c.check_name: c for c in run.get_asset_check_evaluations()}
    assert not checks["in_sync_with_lake"].passed
    assert named in checks["in_sync_with_lake"].metadata["refused"].value
    assert count_and_sum(serving, WEATHER) == served

    # goldctl sync of every table goes past the broken one, syncs the rest, exits non-zero
    done = goldctl("sync", env=env)
    assert done.returncode == 1
    assert named in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert copy_status(lake, serving, CARRIER).in_sync
    assert count_and_sum(serving, WEATHER) == served


# ---- 4. crashes: kill -9 at any point ------------------------------------------------------------


def _sync_locks_held(serving) -> int:
    """Sessions holding a table's sync lock (a row of platform.sync_locks, serving/locks.py)."""
    return query(
        serving,
        "SELECT count(*) FROM pg_locks WHERE relation = 'platform.sync_locks'::regclass "
        "AND pid <> pg_backend_pid()",
    )[0][0]


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_any_point_leaves_the_old_copy_and_the_next_run_heals(point, platform, tmp_path):
    lake, serving = platform
    spec = CARRIER
    added, _ = add_outside_file(lake, spec.name, rows=4)
    before, row = count_and_sum(serving, spec), ledger_row(serving, spec)
    env = goldctl_env(lake, serving)
    marker = tmp_path / "paused"

    proc = paused_goldctl(point, marker, "sync", spec.name, "--force", env=env)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    wait_for(lambda: _sync_locks_held(serving) == 0, 60, "the killed sync's lock to be released")
    assert count_and_sum(serving, spec) == before  # entirely the old version
    assert ledger_row(serving, spec) == row  # and the ledger agrees with it
    st = copy_status(lake, serving, spec)
    assert not st.in_sync and "lake has" in st.reason  # behind the lake, not damaged

    done = goldctl("sync", spec.name, env=env)  # the next plain run
    assert done.returncode == 0, done.stderr
    assert stage_tables(serving) == []
    assert count_and_sum(serving, spec)[0] == before[0] + added
    assert copy_status(lake, serving, spec).in_sync


# ---- 8. concurrency ------------------------------------------------------------------------------


def test_two_forced_syncs_of_one_table_serialize(platform):
    lake, serving = platform
    with serving.connect(autocommit=True) as conn:
        history = conn.execute("SELECT count(*) FROM platform.sync_history").fetchone()[0]
    errors, results = [], []

    def one() -> None:
        try:
            results.append(sync_spec(lake, serving, CARRIER, force=True))
        except Exception as exc:  # noqa: BLE001 - any error fails the test
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and [r.action for r in results] == ["loaded", "loaded"]
    with serving.connect(autocommit=True) as conn:
        after = conn.execute("SELECT count(*) FROM platform.sync_history").fetchone()[0]
    assert after - history == 2 * 13  # 12 months and the table row, twice
    assert copy_status(lake, serving, CARRIER).in_sync and stage_tables(serving) == []


def test_eight_readers_during_twenty_forced_syncs_see_only_whole_copies(platform):
    lake, serving = platform
    expected = count_and_sum(serving, WEATHER)
    readers = [Reader(serving.conninfo(), WEATHER.name) for _ in range(8)]
    for r in readers:
        r.start()
    try:
        wait_for(lambda: all(r.results for r in readers), 60, "every reader to read")
        for _ in range(20):
            assert sync_spec(lake, serving, WEATHER, force=True).action == "loaded"
    finally:
        for r in readers:
            r.stop.set()
        for r in readers:
            r.join(timeout=30)
    assert [e for r in readers for e in r.errors] == []
    assert {res for r in readers for res in r.results} == {expected}
