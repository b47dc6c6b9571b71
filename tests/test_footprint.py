"""Cost and footprint: what each serving copy takes in PostgreSQL and what a lake build costs.

- The RDS asset's metadata and `goldctl status` show each copy's size (table, indexes, TOAST, all
  partitions) and its next sync's headroom (at worst every unit staged again: the copy's size),
  equal to PostgreSQL's own figures queried independently here.
- `fits_storage_budget` passes under the default 20 GB budget and warns (WARN) once the database
  plus every copy's headroom passes 80 % of the budget.
- Lake Gold builds show Athena's scanned bytes and their price; DuckDB's show null. The price
  follows Athena's billing (per-query MB rounding, 10 MB minimum, DDL free).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from platform_assets.lake import athena_cost
from platform_assets.serving import footprint
from resources.sql_engine import QueryStats
from tests.conftest import materialize, platform_resources

PLAIN, PARTITIONED = "airport_daily_weather", "carrier_daily_performance"
SELECTION = " or ".join(
    f"key:{layer}/gold/{t}" for t in (PLAIN, PARTITIONED) for layer in ("lake", "rds")
)


def _independent_sizes(conn, table: str) -> tuple[int, list[int]]:
    """(total bytes, bytes of each partition) from pg_class/pg_inherits, not pg_partition_tree."""
    own = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (f"gold.{table}",)).fetchone()
    parts = [
        n
        for (n,) in conn.execute(
            "SELECT pg_total_relation_size(inhrelid) FROM pg_inherits "
            "WHERE inhparent = %s::regclass",
            (f"gold.{table}",),
        ).fetchall()
    ]
    return own[0] + sum(parts), parts


def goldctl_isolated(env: dict, *args: str) -> str:
    command = [sys.executable, "-m", "platform_assets.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120).stdout


def _metadata(result, path: list[str]) -> dict:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(path)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_sizes_headroom_and_budget_of_the_serving_copies(local_lake, serving):
    result = materialize(SELECTION, platform_resources(local_lake, serving))
    assert result.success
    with serving.connect(autocommit=True) as conn:
        plain_total, plain_parts = _independent_sizes(conn, PLAIN)
        part_total, months = _independent_sizes(conn, PARTITIONED)
        report = footprint.storage_report(conn, [PLAIN, PARTITIONED], budget_gb=20)
    assert len(plain_parts) == 1 and plain_total > 0  # the whole table is one unit
    assert len(months) == 12 and 0 < max(months) < part_total

    plain = _metadata(result, ["rds", "gold", PLAIN])
    assert plain["rds_bytes"] == plain["sync_headroom_bytes"] == plain_total
    partitioned = _metadata(result, ["rds", "gold", PARTITIONED])
    assert partitioned["rds_bytes"] == part_total
    assert partitioned["sync_headroom_bytes"] == part_total
    assert partitioned["rds_size"].endswith(("KiB", "MiB"))

    checks = {(c.asset_key.path[-1], c.check_name): c for c in result.get_asset_check_evaluations()}
    fits = checks[(PARTITIONED, footprint.CHECK_NAME)]
    assert fits.passed, fits.metadata
    assert fits.metadata["budget_bytes"].value == 20 * footprint.GIB
    assert fits.metadata["all_syncs_headroom_bytes"].value == plain_total + part_total

    assert report.headroom_bytes == plain_total + part_total
    assert report.database_bytes > plain_total + part_total
    key = dg.AssetKey(["rds", "gold", PLAIN])
    just_fits = report.peak_bytes / footprint.WARN_SHARE / footprint.GIB * 1.01
    too_small = just_fits / 1.01 * 0.99
    with serving.connect(autocommit=True) as conn:
        ok = footprint.budget_check(conn, key, [PLAIN, PARTITIONED], just_fits)
        warn = footprint.budget_check(conn, key, [PLAIN, PARTITIONED], too_small)
    assert ok.passed
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN
    assert warn.metadata["peak_share"].value > footprint.WARN_SHARE

    # DuckDB built the lake tables: no scanned bytes, so no cost, shown as such
    lake_meta = _metadata(result, ["lake", "gold", PLAIN])
    assert lake_meta["athena_scanned_bytes"] is None and lake_meta["athena_cost_usd"] is None

    # goldctl status shows the same sizes and the budget
    env = {k: v for k, v in os.environ.items() if k not in ("EMBEDDED_PGDATA", "SQL_ENGINE")}
    env.update(LAKE_URL=local_lake.url, RDS_URL=serving.url, RDS_STORAGE_BUDGET_GB="30")
    storage = json.loads(goldctl_isolated(env, "status", "--json"))["storage"]
    assert storage["budget_bytes"] == 30 * footprint.GIB and storage["fits"] is True
    assert storage["copies"][PLAIN]["rds_bytes"] == plain_total
    assert storage["copies"][PARTITIONED]["sync_headroom_bytes"] == part_total
    assert storage["copies"][PLAIN]["partitions"] == 0
    assert storage["copies"][PARTITIONED]["partitions"] == 12
    text = goldctl_isolated(env, "status")
    assert "of the 30.0 GiB budget (ok)" in text
    assert f"{PARTITIONED}: " in text and "12 months; next sync needs" in text


def test_athena_billing_rules():
    mb = athena_cost.MB
    assert athena_cost.billed_bytes(0) == 0  # DDL, or nothing read
    assert athena_cost.billed_bytes(1) == 10 * mb  # 10 MB minimum per query
    assert athena_cost.billed_bytes(11 * mb + 1) == 12 * mb  # rounded up to the next MB
    assert athena_cost.cost_usd([athena_cost.TB], usd_per_tb=5.0) == pytest.approx(5.0)
    assert athena_cost.cost_usd([0, 1, 1], usd_per_tb=5.0) == pytest.approx(20 * mb / 2**40 * 5)


def test_athena_statements_are_metered(athena):  # noqa: F811 (the fixture)
    engine, _, _, sent = athena
    engine.create_table_as("gold.t__build", "SELECT 1 AS x", "gold/t/version=v1")
    stats = engine.statements_run()
    assert [s.query_id for s in stats] == [s.query_id for s in stats if s.query_id]
    assert len(stats) == len(sent()) == 2  # DROP TABLE and the CTAS
    meta = athena_cost.scan_metadata(engine, since=0)
    assert meta["athena_statements"] == 2
    assert meta["athena_scanned_bytes"] == 0  # moto scans nothing; Athena reports real bytes
    assert meta["athena_cost_usd"].value == 0.0 and meta["athena_usd_per_tb"].value == 5.0

    class Priced:  # the same statements as a real Athena would have reported them
        def statements_run(self):
            return [QueryStats("athena", "q1", 1.0, 0), QueryStats("athena", "q2", 1.0, 3 * 2**30)]

        def price_per_tb(self):
            return 6.25

    priced = athena_cost.scan_metadata(Priced(), since=0)
    assert priced["athena_billed_bytes"] == 3 * 2**30
    assert priced["athena_cost_usd"].value == pytest.approx(3 / 1024 * 6.25, abs=1e-6)

    bad = engine.model_copy(update={"usd_per_tb": "five"})
    with pytest.raises(ValueError, match="ATHENA_USD_PER_TB"):
        bad.price_per_tb()
