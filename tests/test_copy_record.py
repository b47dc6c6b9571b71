"""What `lake_change_sensor` records on the RDS asset, on a real instance, lake and PostgreSQL.

Lag shows on `rds/gold/<t>` within one tick (a runless `in_sync_with_lake` evaluation, only on
transitions), the alert sensor pages nobody while the lag is within its tolerance and once past
it (with one recovery), and a brand-new instance records
the copies the ledger holds instead of "Never materialized".
"""

from __future__ import annotations

import dagster as dg
import pytest

from platform_assets import check_history
from platform_assets.copy_record import IN_SYNC, last_metadata
from platform_assets.keys import lake_key, rds_key
from platform_assets.lake.tables import GoldLake
from platform_assets.serving import ledger
from platform_assets.serving.protocol import sync_table
from platform_assets.specs import GOLD_BY_NAME, GOLD_TABLES
from tests.conftest import materialize
from tests.support.in_process import alert_tick, check_name, others, store, tick
from tests.support.lake_edits import TABLE, add_outside_file
from tests.support.webhook import webhook_receiver

IN_SYNC_KEY = dg.AssetCheckKey(rds_key(TABLE), IN_SYNC)


def record(instance, result: dg.SensorResult) -> None:
    """What the sensor daemon does with a tick's asset events."""
    store(instance, result)


def evaluations(result: dg.SensorResult) -> list[dg.AssetCheckEvaluation]:
    return [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]


def latest_in_sync(instance):
    return check_history.latest(instance, IN_SYNC_KEY)


@pytest.mark.parametrize("tolerance_s", [None, 0], ids=["within_tolerance", "past_tolerance"])
def test_lag_shows_on_the_rds_asset_within_one_tick_and_alerts_only_past_tolerance(
    built, monkeypatch, tolerance_s
):
    instance, resources = built
    if tolerance_s is not None:
        monkeypatch.setenv("GOLD_LAG_TOLERANCE_S", str(tolerance_s))
    severity = dg.AssetCheckSeverity.WARN if tolerance_s is None else dg.AssetCheckSeverity.ERROR
    first = tick(instance, resources, cursor=None)
    assert others(first) == []  # built in Dagster, checks green: nothing to add
    with webhook_receiver() as receiver:
        cursor = alert_tick(instance, receiver, None)
        assert receiver.take() == []

        add_outside_file(resources["lake"])
        state = GoldLake(resources["lake"]).current_state(TABLE)
        lagging = tick(instance, resources, cursor=first.cursor)
        [evaluation] = evaluations(lagging)
        assert evaluation.asset_key == rds_key(TABLE) and evaluation.check_name == IN_SYNC
        assert evaluation.passed is False
        assert evaluation.severity == severity  # WARN within the lag tolerance, ERROR past it
        meta = {k: v.value for k, v in evaluation.metadata.items()}
        assert meta["lake_version"] == state.state_id
        assert meta["rds_version"] == state.version  # the ledger still holds the published one
        assert meta["lag_seconds"] >= 0
        assert (meta["lag_seconds"] < meta["lag_tolerance_seconds"]) == (tolerance_s is None)
        assert state.version in meta["reason"]
        assert [r.run_key.rsplit("@", 1)[0] for r in lagging.run_requests] == [
            f"sync:{TABLE}:{state.state_id}"
        ]
        record(instance, lagging)
        assert check_history.failed(latest_in_sync(instance))

        # the next ticks see the same lag already recorded: nothing new
        again = tick(instance, resources, cursor=lagging.cursor)
        assert others(again) == []

        cursor = alert_tick(instance, receiver, cursor)
        if tolerance_s is None:
            assert receiver.take() == []  # a tolerated lag: shown on the asset, pages nobody
        else:
            [failing] = receiver.take()
            assert failing["status"] == "failing" and "(ERROR)" in failing["text"]
            assert failing["fields"]["check"] == check_name(TABLE, IN_SYNC)

        # the sync run lands; its own checks record green; the sensor adds nothing
        assert materialize(f"key:rds/gold/{TABLE}", resources, instance=instance).success
        assert not check_history.failed(latest_in_sync(instance))
        after = tick(instance, resources, cursor=again.cursor)
        assert others(after) == [] and after.run_requests == []

        # one recovery of what was sent, although two evaluations (the sensor's and the run's)
        # were involved; none for a lag nobody was told of
        cursor = alert_tick(instance, receiver, cursor)
        recovered = [] if tolerance_s is None else ["recovered"]
        assert [m["status"] for m in receiver.take()] == recovered
        alert_tick(instance, receiver, cursor)
        assert receiver.take() == []


def test_a_copy_damaged_by_hand_is_an_error_at_once_and_green_after_a_repair(built):
    instance, resources = built
    lake, serving = resources["lake"], resources["serving"]
    first = tick(instance, resources, cursor=None)
    with serving.connect(autocommit=True) as conn:
        conn.execute(f"TRUNCATE gold.{TABLE}")

    damaged = tick(instance, resources, cursor=first.cursor)
    [evaluation] = evaluations(damaged)
    assert evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR  # no lag tolerance for damage
    assert "by hand" in evaluation.description
    record(instance, damaged)
    assert others(tick(instance, resources, cursor=damaged.cursor)) == []

    # repaired outside Dagster (goldctl sync): the sensor turns the check green itself
    sync_table(GOLD_BY_NAME[TABLE], GoldLake(lake), resources["engine"], serving)
    repaired = tick(instance, resources, cursor=damaged.cursor)
    [evaluation] = evaluations(repaired)
    assert evaluation.passed is True
    assert repaired.run_requests == []
    record(instance, repaired)
    assert not check_history.failed(latest_in_sync(instance))
    assert others(tick(instance, resources, cursor=repaired.cursor)) == []


def test_a_new_instance_records_the_lake_and_the_copies_it_finds(built):
    """Built on one instance (like `dagster asset materialize` on a temporary one); a fresh
    instance's first tick records every lake state and RDS copy, with a green in-sync check."""
    _, resources = built
    with resources["serving"].connect(autocommit=True) as conn:
        ledger_rows = {t: row for t, (row, _) in ledger.read_everything(conn).items()}
    with dg.instance_for_test() as fresh:
        result = tick(fresh, resources, cursor=None)
        assert result.run_requests == []
        materialized = {
            e.asset_key: e for e in result.asset_events if isinstance(e, dg.AssetMaterialization)
        }
        assert set(materialized) == {rds_key(s.name) for s in GOLD_TABLES} | {
            lake_key("gold", s.name) for s in GOLD_TABLES
        }
        for spec in GOLD_TABLES:
            copy = materialized[rds_key(spec.name)]
            row = ledger_rows[spec.name]
            assert copy.metadata["lake_version"].value == row.lake_version
            assert copy.metadata["dagster/row_count"].value == row.row_count
            assert "first seen by this instance" in copy.description
        checks = evaluations(result)
        assert sorted(e.asset_key.path[-1] for e in checks) == sorted(s.name for s in GOLD_TABLES)
        assert all(e.passed and e.check_name == IN_SYNC for e in checks)

        record(fresh, result)
        for spec in GOLD_TABLES:
            assert last_metadata(fresh, rds_key(spec.name), "lake_version") == (
                ledger_rows[spec.name].lake_version
            )
            key = dg.AssetCheckKey(rds_key(spec.name), IN_SYNC)
            assert not check_history.failed(check_history.latest(fresh, key))
        # recorded once: a second tick (or a reset cursor) adds nothing
        assert others(tick(fresh, resources, cursor=result.cursor)) == []
        assert others(tick(fresh, resources, cursor=None)) == []


def test_a_misconfigured_run_does_not_paint_a_healthy_copy_red(built):
    """A sync run with a malformed RDS_URL fails on the run, once (a bad setting is a refusal:
    no op retry); its planned checks never judged the copy, so the next tick records the copy's
    real state: every check green and the copy the ledger holds, over the failed attempt."""
    from platform_assets.copy_record import ui_shows
    from platform_assets.keys import RDS_CHECKS
    from resources.serving_db import ServingDatabase

    instance, resources = built
    tick(instance, resources, cursor=None)
    bad = {**resources, "serving": ServingDatabase(url="mysql://nobody@127.0.0.1:1/nothing")}
    failed = materialize(f"key:rds/gold/{TABLE}", bad, raise_on_error=False, instance=instance)
    assert not failed.success
    [failure] = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "RDS_URL" in failure.step_failure_data.error.message
    assert not [e for e in failed.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    check_keys = [dg.AssetCheckKey(rds_key(TABLE), name) for name in RDS_CHECKS]
    assert {ui_shows(instance, key) for key in check_keys} == {"execution failed"}
    assert not [e for e in failed.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]

    # a fresh look (an in-process run stores no asset selection, so a steady tick would not
    # know it touched the table; a daemon-launched run does: tests/test_alert_precision.py)
    result = tick(instance, resources, cursor=None)
    assert result.run_requests == []  # the copy is fine: nothing to sync
    checks = evaluations(result)
    assert sorted(e.check_name for e in checks) == sorted(RDS_CHECKS)
    assert all(e.passed and e.asset_key == rds_key(TABLE) for e in checks), checks
    [copy] = [e for e in others(result) if isinstance(e, dg.AssetMaterialization)]
    assert copy.asset_key == rds_key(TABLE) and "failed without changing it" in copy.description
    record(instance, result)
    assert {ui_shows(instance, key) for key in check_keys} == {"passed"}
    assert others(tick(instance, resources, cursor=result.cursor)) == []  # once


def test_a_sync_published_during_a_tick_is_not_painted_red_after_its_green(built, monkeypatch):
    """The tick read the copy before a sync published it; the sync's own checks record green
    first, so the tick's lag (read before) would land after it: a false ERROR/recovery pair.
    The sync is published from inside the tick (after its snapshot), as a real run would."""
    from platform_assets import sensors

    instance, resources = built
    first = tick(instance, resources, cursor=None)
    add_outside_file(resources["lake"])
    real = sensors.copy_events

    def publish_meanwhile(instance_, spec, state, facts, verdict):
        events = real(instance_, spec, state, facts, verdict)
        if spec.name == TABLE:
            lake, serving = GoldLake(resources["lake"]), resources["serving"]
            assert sync_table(spec, lake, resources["engine"], serving).action != "unchanged"
        return events

    monkeypatch.setattr(sensors, "copy_events", publish_meanwhile)
    raced = tick(instance, resources, cursor=first.cursor)
    assert [e for e in evaluations(raced) if e.asset_key == rds_key(TABLE) and not e.passed] == []

    monkeypatch.setattr(sensors, "copy_events", real)  # control: the same lag, nobody syncing
    add_outside_file(resources["lake"])
    lagging = tick(instance, resources, cursor=raced.cursor)
    [evaluation] = [e for e in evaluations(lagging) if e.asset_key == rds_key(TABLE)]
    assert evaluation.passed is False


def test_a_sync_published_after_the_last_look_before_the_write_is_judged_again(built, monkeypatch):
    """The narrowest window: the tick found the ledger unchanged just before writing its lag,
    then a sync published and recorded its green, then the tick's red was written: the tick
    reads the ledger once more after writing, sees the publish and writes the copy's verdict
    on fresh facts last (green: what the sync left)."""
    from platform_assets import copy_record

    instance, resources = built
    first = tick(instance, resources, cursor=None)
    add_outside_file(resources["lake"])
    real = copy_record._overtaken
    published = []

    def publish_after_looking(conn, facts, tables):
        moved = real(conn, facts, tables)
        if TABLE in tables and not published:  # the look before the write: then a sync lands
            spec, lake = GOLD_BY_NAME[TABLE], GoldLake(resources["lake"])
            published.append(sync_table(spec, lake, resources["engine"], resources["serving"]))
            instance.report_runless_asset_event(  # the sync's own green, as its run records it
                dg.AssetCheckEvaluation(rds_key(TABLE), IN_SYNC, passed=True)
            )
        return moved

    monkeypatch.setattr(copy_record, "_overtaken", publish_after_looking)
    tick(instance, resources, cursor=first.cursor)
    assert published and published[0].action != "unchanged"
    latest = latest_in_sync(instance)
    assert not check_history.failed(latest), latest.event.asset_check_evaluation


def test_a_lag_recorded_over_the_sync_runs_spinner_does_not_hide_its_green(built, monkeypatch):
    """The sensor records the lag over the sync run's planned (spinning) check; the run's green
    lands in its older execution row, which the page no longer shows: the run re-asserts its
    verdict without a run, so the page is green the moment the run ends."""
    from platform_assets.copy_record import ui_shows
    from platform_assets.gold_assets import rds_asset

    instance, resources = built
    add_outside_file(resources["lake"])
    real = rds_asset.sync_table

    def lag_recorded_meanwhile(*args, **kwargs):
        instance.report_runless_asset_event(  # what the sensor records over the spinner
            dg.AssetCheckEvaluation(rds_key(TABLE), IN_SYNC, passed=False)
        )
        assert ui_shows(instance, IN_SYNC_KEY) == "failed"
        return real(*args, **kwargs)

    monkeypatch.setattr(rds_asset, "sync_table", lag_recorded_meanwhile)
    assert materialize(f"key:rds/gold/{TABLE}", resources, instance=instance).success
    assert ui_shows(instance, IN_SYNC_KEY) == "passed"
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([IN_SYNC_KEY])
    evaluation = latest[IN_SYNC_KEY].event.asset_check_evaluation
    assert evaluation.metadata["evaluated_by"].value.startswith("run ")
