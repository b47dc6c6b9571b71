"""Every generated name fits PostgreSQL's 63 bytes and stays unique, even for long table names."""

from __future__ import annotations

import shutil
from dataclasses import replace

import dagster as dg

from platform_assets import specs
from platform_assets.gold_assets.lake_asset import build_lake_asset
from platform_assets.gold_assets.rds_asset import build_rds_asset
from platform_assets.lake.tables import GoldLake
from platform_assets.serving.names import MAX_IDENT, fit, unit_child
from platform_assets.specs import GOLD_BY_NAME
from platform_assets.status import table_status
from tests.conftest import platform_resources
from tests.support.copies import sync_spec

LONG = "carrier_daily_performance_for_the_operations_dashboard_v2"  # 57 characters


def test_fit_keeps_short_names_and_makes_long_ones_unique():
    assert fit("short") == "short"
    a, b = fit("x" * 70 + "_a"), fit("x" * 70 + "_b")
    assert len(a) == len(b) == MAX_IDENT and a != b
    assert len(unit_child(LONG, "2013-01")) <= MAX_IDENT


def test_a_long_table_name_syncs_and_every_name_fits(tmp_path, monkeypatch, local_lake, serving):
    sql_dir = tmp_path / "sql"
    shutil.copytree(specs.SQL_DIR, sql_dir)
    shutil.copy(
        sql_dir / "gold" / "carrier_daily_performance.sql", sql_dir / "gold" / f"{LONG}.sql"
    )
    monkeypatch.setattr(specs, "SQL_DIR", sql_dir)
    spec = replace(GOLD_BY_NAME["carrier_daily_performance"], name=LONG)
    resources = platform_resources(local_lake, serving)

    assert dg.materialize([build_lake_asset(spec), build_rds_asset(spec)], resources=resources)
    for _ in range(2):  # the same units again: their index names must not collide
        assert sync_spec(local_lake, serving, spec, force=True).action == "loaded"
    assert sync_spec(local_lake, serving, spec, months=["2013-07"]).partitions_reloaded == [
        "2013-07"
    ]

    with serving.connect(autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname IN ('gold', 'gold_stage')"
            )
        ]
        children = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", (f"gold.{LONG}",)
        ).fetchone()[0]
        status = table_status(spec, GoldLake(local_lake), conn)
    ours = [n for n in names if n.startswith(LONG[:40])]
    assert children == 12 and len(ours) >= 12 * 3  # the units and their indexes
    assert all(len(n.encode()) <= MAX_IDENT for n in ours)
    assert unit_child(LONG, "2013-07") in ours
    assert status.in_sync, status.reason
