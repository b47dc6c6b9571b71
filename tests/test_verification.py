"""Verification: staged rows that do not match the lake's checksums are never published.

The checksum scan runs on its own connection beside the index builds (serving/units.py); these
tests hold it to the same promise as a scan run before them: a mismatch refuses the sync naming
the months, leaves no staging behind, and the old copy keeps serving.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from platform_assets.lake.tables import GoldLake
from platform_assets.serving import snapshot
from platform_assets.serving.names import STAGE_SCHEMA
from platform_assets.serving.protocol import SyncVerificationError, sync_table
from platform_assets.specs import GOLD_BY_NAME
from platform_assets.status import table_status
from resources.sql_engine import DuckDBEngine
from tests.conftest import materialize, platform_resources

CARRIER = GOLD_BY_NAME["carrier_daily_performance"]  # 12 months: 12 units, 24 index builds
WEATHER = GOLD_BY_NAME["airport_daily_weather"]  # one unit


def _staging_tables(serving) -> list[str]:
    with serving.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
            (STAGE_SCHEMA,),
        ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize("spec", [CARRIER, WEATHER], ids=lambda s: s.name)
def test_staging_that_differs_from_the_lake_is_refused_and_the_old_copy_serves(
    spec, local_lake, serving
):
    selection = f"key:lake/gold/{spec.name} or key:rds/gold/{spec.name}"
    assert materialize(selection, platform_resources(local_lake, serving)).success
    gold, engine = GoldLake(local_lake), DuckDBEngine(lake=local_lake)
    snap = snapshot.take(spec, gold, engine)
    month = sorted(snap.segments)[3]
    rows, checksum = snap.segments[month]
    wrong = replace(snap, segments={**snap.segments, month: (rows, checksum + 1)})

    with pytest.raises(SyncVerificationError) as refused:
        sync_table(spec, gold, engine, serving, force=True, snap=wrong, log=lambda _: None)

    assert f"staging of gold.{spec.name} does not match the lake" in str(refused.value)
    assert f"differing segments: {month}" in str(refused.value)
    assert _staging_tables(serving) == []
    with serving.connect(autocommit=True) as conn:
        status = table_status(spec, gold, conn)
    assert status.in_sync and status.rds_rows == snap.rows
    # and the true snapshot still goes through: the refusal was about the data, not the table
    result = sync_table(spec, gold, engine, serving, force=True, snap=snap, log=lambda _: None)
    assert result.action == "loaded" and result.row_count == snap.rows
