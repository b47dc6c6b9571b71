"""Orphans: a Gold table renamed or removed in the code leaves a copy and ledger rows behind.

They are reported by `goldctl status` (exit code, JSON, age), logged once by
`lake_change_sensor`, no longer readable by the dashboard role (revoked, not dropped), and only
`goldctl drop-orphan` removes one: exactly that copy and its ledger rows. Real PostgreSQL, real
lake, goldctl as a subprocess.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace

import dagster as dg
import psycopg
import pytest

from platform_assets import specs
from platform_assets.gold_assets import build_lake_asset, build_rds_asset
from platform_assets.specs import GOLD_BY_NAME
from tests.fault_tools import goldctl, goldctl_env
from tests.test_sensors import tick

RENAMED = "carrier_daily_perf_old"  # the name a spec had before it was renamed
REMOVED = "weather_retired"  # a spec deleted from the code


@pytest.fixture
def with_orphans(built, tmp_path, monkeypatch):
    """The platform built, plus two copies synced under names no spec declares any more."""
    instance, resources = built
    sql_dir = tmp_path / "sql"
    shutil.copytree(specs.SQL_DIR, sql_dir)
    for old, source in ((RENAMED, "carrier_daily_performance"), (REMOVED, "airport_daily_weather")):
        shutil.copy(sql_dir / "gold" / f"{source}.sql", sql_dir / "gold" / f"{old}.sql")
    monkeypatch.setattr(specs, "SQL_DIR", sql_dir)
    gone = [
        replace(GOLD_BY_NAME["carrier_daily_performance"], name=RENAMED),
        replace(GOLD_BY_NAME["airport_daily_weather"], name=REMOVED),
    ]
    assets = [a for spec in gone for a in (build_lake_asset(spec), build_rds_asset(spec))]
    assert dg.materialize(assets, resources=resources).success
    return instance, resources


def ledger_counts(serving) -> dict[str, int]:
    with serving.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT table_name, count(*) FROM platform.sync_ledger GROUP BY table_name"
        ).fetchall()
    return dict(rows)


def dashboard_can_read(serving, table: str) -> bool:
    with psycopg.connect(serving.dashboard_url(), autocommit=True) as conn:
        try:
            conn.execute(f"SELECT count(*) FROM gold.{table}").fetchone()
        except psycopg.errors.InsufficientPrivilege:
            return False
    return True


def test_orphans_are_reported_revoked_logged_once_and_dropped_on_purpose(with_orphans, caplog):
    instance, resources = with_orphans
    lake, serving = resources["lake"], resources["serving"]
    env = goldctl_env(lake, serving)
    assert dashboard_can_read(serving, RENAMED)  # served, silently, until the platform looks

    status = goldctl("status", "--json", env=env)
    assert status.returncode == 3, status.stderr
    report = json.loads(status.stdout)
    assert all(t["in_sync"] for t in report["tables"])  # the declared tables are fine
    found = {o["table"]: o for o in report["orphans"]}
    assert sorted(found) == [REMOVED, RENAMED]
    for orphan in found.values():
        assert orphan["has_copy"] and orphan["ledger_rows"] >= 2
        assert 0 <= orphan["age_seconds"] < 600
    text = goldctl("status", env=env)
    assert text.returncode == 3 and f"goldctl drop-orphan {RENAMED}" in text.stdout

    # revoked, not dropped: the dashboard role is denied, the copy is still there
    assert not dashboard_can_read(serving, RENAMED) and not dashboard_can_read(serving, REMOVED)
    assert dashboard_can_read(serving, "carrier_daily_performance")
    with serving.connect(autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM gold.{RENAMED}").fetchone()[0] > 0

    # the sensor logs each orphan once, and nothing for them on the next tick
    with caplog.at_level(logging.WARNING):
        first = tick(instance, resources, cursor=None)
    logged = [r.getMessage() for r in caplog.records if "no spec declares" in r.getMessage()]
    assert sorted(m.split(":")[0] for m in logged) == [f"orphan {REMOVED}", f"orphan {RENAMED}"]
    assert first.run_requests == []  # nothing to sync: the orphans are not requested either
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        tick(instance, resources, cursor=first.cursor)
    assert not [r for r in caplog.records if "no spec declares" in r.getMessage()]

    # drop-orphan refuses a declared table and an unknown name, touching nothing
    before = ledger_counts(serving)
    declared = goldctl("drop-orphan", "carrier_daily_performance", env=env)
    assert declared.returncode == 2 and "declared by a spec" in declared.stderr
    unknown = goldctl("drop-orphan", "no_such_table", env=env)
    assert unknown.returncode == 2 and "no orphan named" in unknown.stderr
    assert ledger_counts(serving) == before

    # ...and removes exactly the orphan asked for, with its ledger rows
    dropped = goldctl("drop-orphan", RENAMED, env=env)
    assert dropped.returncode == 0, dropped.stderr
    after = ledger_counts(serving)
    assert RENAMED not in after
    assert after == {t: n for t, n in before.items() if t != RENAMED}
    with serving.connect(autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"gold.{RENAMED}",)).fetchone()[0] is None
        assert conn.execute("SELECT to_regclass(%s)", (f"gold.{REMOVED}",)).fetchone()[0]
    still = json.loads(goldctl("status", "--json", env=env).stdout)
    assert [o["table"] for o in still["orphans"]] == [REMOVED]

    assert goldctl("drop-orphan", REMOVED, env=env).returncode == 0
    assert goldctl("status", env=env).returncode == 0
