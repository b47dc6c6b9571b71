"""Orphans: a Gold table renamed or removed in the code leaves a copy and ledger rows behind.

They are reported by `goldctl status` (exit code, JSON, age), logged once by
`lake_change_sensor`, no longer readable by the dashboard role (revoked, not dropped), and only
`goldctl drop-orphan` removes one: exactly that copy and its ledger rows. Real PostgreSQL, real
lake, goldctl as a subprocess.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import dagster as dg
import psycopg
import pytest

from platform_assets import specs
from platform_assets.gold_assets.lake_asset import build_lake_asset
from platform_assets.gold_assets.rds_asset import build_rds_asset
from platform_assets.specs import GOLD_BY_NAME
from tests.support.goldctl import goldctl, goldctl_env
from tests.support.in_process import tick

RENAMED = "carrier_daily_perf_old"  # the name a spec had before it was renamed
REMOVED = "weather_retired"  # a spec deleted from the code


@pytest.fixture
def with_orphans(built, tmp_path):
    """The platform built, plus two copies synced under names no spec declares any more."""
    instance, resources = built
    sql_dir = tmp_path / "sql"
    shutil.copytree(specs.SQL_DIR, sql_dir)
    for old, source in ((RENAMED, "carrier_daily_performance"), (REMOVED, "airport_daily_weather")):
        shutil.copy(sql_dir / "gold" / f"{source}.sql", sql_dir / "gold" / f"{old}.sql")
    gone = [
        replace(GOLD_BY_NAME["carrier_daily_performance"], name=RENAMED, sql_dir=sql_dir),
        replace(GOLD_BY_NAME["airport_daily_weather"], name=REMOVED, sql_dir=sql_dir),
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


def test_orphans_are_reported_revoked_logged_once_and_dropped_on_purpose(with_orphans, capfd):
    instance, resources = with_orphans
    lake, serving = resources["lake"], resources["serving"]
    env = goldctl_env(lake, serving)
    assert dashboard_can_read(serving, RENAMED)  # served, silently, until the platform looks

    status = goldctl("status", "--json", env=env)
    assert status.returncode == 3, status.stderr
    report = json.loads(status.stdout)
    assert all(t["in_sync"] for t in report["tables"])  # the declared tables are fine
    found = {o["table"]: o for o in report["orphans"]}
    assert sorted(found) == sorted([REMOVED, RENAMED])
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
    capfd.readouterr()
    first = tick(instance, resources, cursor=None)
    logged = [line for line in capfd.readouterr().err.splitlines() if "no spec declares" in line]
    assert sorted(line.split(" - ")[-1].split(":")[0] for line in logged) == sorted(
        f"orphan {t}" for t in (REMOVED, RENAMED)
    ), logged
    assert first.run_requests == []  # nothing to sync: the orphans are not requested either
    tick(instance, resources, cursor=first.cursor)
    assert "no spec declares" not in capfd.readouterr().err
    with serving.connect(autocommit=True) as conn:
        assert (
            conn.execute(
                "SELECT count(*) FROM platform.orphans WHERE sensor_logged_at IS NOT NULL"
            ).fetchone()[0]
            == 2
        )

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
