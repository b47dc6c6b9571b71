"""Steady ticks (platform_assets/steady.py): `lake_change_sensor` skips a table only while what
its last look recorded is still true, and looks again at a change, a run, or after FULL_LOOK_S.
"""

from __future__ import annotations

import json
import uuid

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun

from platform_assets import steady
from platform_assets.keys import rds_key
from platform_assets.specs import GOLD_TABLES
from tests.support.in_process import tick
from tests.support.lake_edits import TABLE


def _store(instance, result: dg.SensorResult) -> str:
    """What the daemon does with a tick: store its events, keep its cursor."""
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result.cursor


def _aged(cursor: str, seconds: float) -> str:
    data = json.loads(cursor)
    for look in data["looks"].values():
        look[2] -= seconds
    data["tick_at"] -= seconds
    return json.dumps(data)


def test_a_steady_tick_skips_in_sync_tables_and_a_copy_dropped_by_hand_is_looked_at(built):
    instance, resources = built
    cursor = _store(instance, tick(instance, resources, cursor=None))
    assert set(json.loads(cursor)["looks"]) == {spec.name for spec in GOLD_TABLES}

    steady_tick = tick(instance, resources, cursor=cursor)
    assert steady_tick.asset_events == [] and steady_tick.run_requests == []

    with resources["serving"].connect(autocommit=True) as conn:
        conn.execute(f"DROP TABLE gold.{TABLE}")
    after = tick(instance, resources, cursor=steady_tick.cursor)

    lag = [e for e in after.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert [(e.asset_key, e.passed) for e in lag] == [(rds_key(TABLE), False)]
    assert [r.tags["gold/table"] for r in after.run_requests] == [TABLE]


def test_what_only_the_instance_knows_is_looked_at_again_within_the_full_look_bound(built):
    """A wiped asset history changes nothing RDS or the lake says: steady ticks keep the last
    look for at most FULL_LOOK_S, then the copy the ledger holds is recorded again."""
    instance, resources = built
    cursor = _store(instance, tick(instance, resources, cursor=None))
    instance.wipe_assets([rds_key(TABLE)])

    within = tick(instance, resources, cursor=cursor)
    assert within.asset_events == []

    later = tick(instance, resources, cursor=_aged(within.cursor, steady.FULL_LOOK_S + 1))
    recorded = [e for e in later.asset_events if isinstance(e, dg.AssetMaterialization)]
    assert [e.asset_key for e in recorded] == [rds_key(TABLE)]
    assert "first seen by this instance" in recorded[0].description


def test_a_run_that_touched_a_table_makes_the_next_tick_look_at_it(built):
    instance, resources = built
    cursor = _store(instance, tick(instance, resources, cursor=None))
    instance.wipe_assets([rds_key(TABLE)])
    instance.add_run(  # a run that selected the copy and ended since the last tick
        DagsterRun(
            job_name="__ASSET_JOB",
            run_id=uuid.uuid4().hex,
            status=dg.DagsterRunStatus.FAILURE,
            asset_selection=frozenset({rds_key(TABLE)}),
        )
    )

    after = tick(instance, resources, cursor=cursor)
    recorded = [e for e in after.asset_events if isinstance(e, dg.AssetMaterialization)]
    assert [e.asset_key for e in recorded] == [rds_key(TABLE)]


def test_the_cursor_from_before_steady_ticks_is_read():
    assert steady.Cursor.load(json.dumps({TABLE: "v1"})).seen == {TABLE: "v1"}
    assert steady.Cursor.load(None).seen == {}
