"""`check_alert_sensor`: one message when a check goes red, none while red, one on recovery.

Real check failures (the RDS copy made to lag by an outside change to the lake), stored on a real
instance, read by the sensor from `defs`, posted by `AlertNotifier` to an HTTP receiver on
loopback that records every JSON body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import dagster as dg
import pytest

from platform_assets.definitions import defs
from platform_assets.keys import RDS_CHECKS
from platform_assets.serving import footprint
from platform_assets.specs import GOLD_TABLES
from resources.alerts import AlertNotifier
from tests.conftest import GOLD, materialize, platform_resources
from tests.support.in_process import alert_tick, by_check, check_name, failed_checks, run_rds_checks
from tests.support.lake_edits import TABLE, add_outside_file
from tests.support.webhook import SECRET_PATH, Receiver, webhook_receiver

LAG_CHECKS = {"in_sync_with_lake"}  # what an outside change turns red (the copy is only behind)
COPY_CHECKS = set(RDS_CHECKS) - LAG_CHECKS - {footprint.CHECK_NAME}  # green while only behind


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


def test_the_sensor_is_registered_running():
    sensor = defs.resolve_sensor_def("check_alert_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert "alerts" in sensor.required_resource_keys


def test_one_alert_on_failure_none_while_red_one_on_recovery(
    local_lake, serving, receiver, monkeypatch
):
    resources = platform_resources(local_lake, serving)
    failing_checks = {check_name(TABLE, c) for c in LAG_CHECKS}
    with dg.instance_for_test() as instance:
        assert materialize(GOLD, resources, instance=instance).success

        # all green: nothing to say, however often the sensor looks
        cursor = alert_tick(instance, receiver, None)
        assert receiver.take() == []
        cursor = alert_tick(instance, receiver, cursor)
        assert receiver.take() == []

        # an outside change: the RDS copy lags, the scheduled checks show it (WARN) ...
        add_outside_file(local_lake)
        checks = run_rds_checks(resources, instance)
        assert checks.success  # non-blocking checks fail, the run stays green
        assert len(checks.get_asset_check_evaluations()) == len(RDS_CHECKS) * len(GOLD_TABLES)
        assert failed_checks(checks) == failing_checks  # the other tables stay green
        lagging = {
            e.check_name: e
            for e in checks.get_asset_check_evaluations()
            if e.asset_key.path[-1] == TABLE
        }
        assert lagging["in_sync_with_lake"].severity == dg.AssetCheckSeverity.WARN
        # the copy is the version the ledger says it holds: row count and fingerprint agree
        assert all(lagging[c].passed for c in COPY_CHECKS), lagging
        # ... and a lag within its tolerance pages nobody
        cursor = alert_tick(instance, receiver, cursor)
        assert receiver.take() == []

        # the lag past its tolerance (made 0 s): the same check at ERROR, one message
        monkeypatch.setenv("GOLD_LAG_TOLERANCE_S", "0")
        assert failed_checks(run_rds_checks(resources, instance)) == failing_checks
        cursor = alert_tick(instance, receiver, cursor)
        failures = receiver.take()
        grouped = by_check(failures)
        assert set(grouped) == failing_checks, failures
        assert all(len(v) == 1 for v in grouped.values()), failures
        for name, [message] in grouped.items():
            assert message["status"] == "failing"
            assert name in message["text"] and TABLE in message["text"]
            assert "is failing" in message["text"]
            assert message["blocks"][0]["text"]["text"].startswith(":rotating_light:")
        lag = grouped[check_name(TABLE, "in_sync_with_lake")][0]
        assert "(ERROR)" in lag["text"]  # past the lag tolerance
        assert "lake_version" in lag["text"] and "rds_version" in lag["text"]

        # still red: ticking again, or running the checks again, sends nothing
        cursor = alert_tick(instance, receiver, cursor)
        assert receiver.take() == []
        assert failed_checks(run_rds_checks(resources, instance)) == failing_checks
        cursor = alert_tick(instance, receiver, cursor)
        assert receiver.take() == []

        # the sync (with its checks) brings the copy back: exactly one recovery per check
        synced = materialize(f"key:rds/gold/{TABLE}", resources, instance=instance)
        assert all(e.passed for e in synced.get_asset_check_evaluations())
        cursor = alert_tick(instance, receiver, cursor)
        recoveries = receiver.take()
        grouped = by_check(recoveries)
        assert set(grouped) == failing_checks, recoveries
        assert all(len(v) == 1 for v in grouped.values()), recoveries
        for name, [message] in grouped.items():
            assert message["status"] == "recovered"
            assert f"Check {name} recovered" in message["text"]
            assert message["blocks"][0]["text"]["text"].startswith(":white_check_mark:")

        # green again and staying green: silence
        assert failed_checks(run_rds_checks(resources, instance)) == set()
        alert_tick(instance, receiver, cursor)
        assert receiver.take() == []

    # every post went to the configured webhook, and no message carries a secret
    assert receiver.paths and set(receiver.paths) == {SECRET_PATH}
    everything = b"\n".join(receiver.raw).decode()
    for secret in ("xoxb-do-not-leak", "T0SECRET", serving.url, "password"):
        assert secret not in everything
    assert str(serving.conninfo()) not in everything


def test_a_new_sensor_cursor_alerts_on_a_check_that_is_already_red(
    local_lake, serving, receiver, monkeypatch
):
    """A sensor started (or reset) while a check is red reports it once, then stays quiet."""
    resources = platform_resources(local_lake, serving)
    monkeypatch.setenv("GOLD_LAG_TOLERANCE_S", "0")  # any lag is past its tolerance: red
    with dg.instance_for_test() as instance:
        assert materialize(GOLD, resources, instance=instance).success
        add_outside_file(local_lake)
        run_rds_checks(resources, instance)

        cursor = alert_tick(instance, receiver, None)
        assert set(by_check(receiver.take())) == {check_name(TABLE, c) for c in LAG_CHECKS}
        alert_tick(instance, receiver, cursor)
        assert receiver.take() == []


def test_an_alert_the_webhook_did_not_take_is_sent_on_the_next_tick(
    local_lake, serving, monkeypatch
):
    """A webhook outage delays the message, it does not swallow it (lag is never silent)."""
    resources = platform_resources(local_lake, serving)
    monkeypatch.setenv("GOLD_LAG_TOLERANCE_S", "0")  # any lag is past its tolerance: red
    with webhook_receiver() as gone:
        dead_url = gone.url  # nothing listens there any more
    sensor = defs.resolve_sensor_def("check_alert_sensor")
    with dg.instance_for_test() as instance:
        assert materialize(GOLD, resources, instance=instance).success
        add_outside_file(local_lake)
        run_rds_checks(resources, instance)

        context = dg.build_sensor_context(
            instance=instance, resources={"alerts": AlertNotifier(webhook_url=dead_url)}
        )
        result = sensor(context)  # the tick completes despite the dead webhook
        state = json.loads(result.cursor)["checks"]
        assert not any(s.get("failing") for s in state.values())

        with webhook_receiver() as back:
            cursor = alert_tick(instance, back, result.cursor)
            assert set(by_check(back.take())) == {check_name(TABLE, c) for c in LAG_CHECKS}
            alert_tick(instance, back, cursor)
            assert back.take() == []


def _freshness_change(instance, key: dg.AssetKey, previous: str, new: str) -> None:
    """Store a freshness state change the way the daemon's FreshnessDaemon does."""
    import time

    from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

    instance._report_runless_asset_event(  # noqa: SLF001 (the daemon's own entry point)
        FreshnessStateChange(
            key=key,
            previous_state=FreshnessState(previous),
            new_state=FreshnessState(new),
            state_change_timestamp=time.time(),
        )
    )


def test_freshness_failure_alerts_once_and_recovery_once(receiver):
    key = dg.AssetKey(["rds", "gold", TABLE])
    with dg.instance_for_test() as instance:
        _freshness_change(instance, key, "UNKNOWN", "PASS")
        cursor = alert_tick(instance, receiver, None)
        assert receiver.take() == []

        _freshness_change(instance, key, "PASS", "FAIL")
        cursor = alert_tick(instance, receiver, cursor)
        [failing] = receiver.take()
        assert failing["fields"]["asset"] == key.to_user_string()
        assert "FAIL" in json.dumps(failing)
        cursor = alert_tick(instance, receiver, cursor)
        assert receiver.take() == []

        _freshness_change(instance, key, "FAIL", "PASS")
        cursor = alert_tick(instance, receiver, cursor)
        [recovered] = receiver.take()
        assert recovered["fields"]["asset"] == key.to_user_string()
        assert "PASS" in json.dumps(recovered)
        alert_tick(instance, receiver, cursor)
        assert receiver.take() == []


def _store_check_event(instance, run_id: str, data) -> None:
    """Store one check event of a run the way a run worker does (planned, then evaluated)."""
    import time

    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.events.log import EventLogEntry

    kind = (
        DagsterEventType.ASSET_CHECK_EVALUATION
        if isinstance(data, dg.AssetCheckEvaluation)
        else DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
    )
    instance.event_log_storage.store_event(
        EventLogEntry(
            error_info=None,
            level="DEBUG",
            user_message="",
            run_id=run_id,
            timestamp=time.time(),
            dagster_event=DagsterEvent(kind.value, "__ASSET_JOB", event_specific_data=data),
        )
    )


def test_a_recovery_that_lands_after_a_later_planned_failure_is_sent(receiver):
    """The flaky end-to-end run: a sync run plans its checks, a check-only run plans the same
    check later and lands red first, then the sync's green lands. Ordered by record id, the
    green one looked older than the red one and the recovery was never sent."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationPlanned,
    )

    key = dg.AssetKey(["rds", "gold", TABLE])
    check = "in_sync_with_lake"
    planned = AssetCheckEvaluationPlanned(asset_key=key, check_name=check)
    with dg.instance_for_test() as instance:
        _store_check_event(instance, "sync-run", planned)
        _store_check_event(instance, "check-run", planned)
        _store_check_event(instance, "check-run", dg.AssetCheckEvaluation(key, check, passed=False))
        cursor = alert_tick(instance, receiver, None)
        assert [m["status"] for m in receiver.take()] == ["failing"]

        _store_check_event(instance, "sync-run", dg.AssetCheckEvaluation(key, check, passed=True))
        cursor = alert_tick(instance, receiver, cursor)
        assert [m["status"] for m in receiver.take()] == ["recovered"]
        alert_tick(instance, receiver, cursor)
        assert receiver.take() == []


def test_a_copy_changed_by_hand_turns_row_count_and_fingerprint_red_at_once(local_lake, serving):
    """A DELETE by hand leaves the catalog facts alone (the lag check cannot see it) but the copy
    is no longer the version the ledger says it holds: both copy checks fail, naming the month."""
    resources = platform_resources(local_lake, serving)
    with dg.instance_for_test() as instance:
        assert materialize(GOLD, resources, instance=instance).success
        assert failed_checks(run_rds_checks(resources, instance)) == set()  # no false alarm
        with serving.connect(autocommit=True) as conn:
            month = conn.execute(
                f"DELETE FROM gold.{TABLE} WHERE ctid IN (SELECT ctid FROM gold.{TABLE} LIMIT 1) "
                "RETURNING to_char(flight_date, 'YYYY-MM')"
            ).fetchone()[0]
        checks = run_rds_checks(resources, instance)
        assert failed_checks(checks) == {check_name(TABLE, c) for c in COPY_CHECKS}
        evaluations = {
            e.check_name: e
            for e in checks.get_asset_check_evaluations()
            if e.asset_key.path[-1] == TABLE
        }
        rows = evaluations["row_count_matches"].metadata
        assert rows["rds_rows"].value == rows["ledger_rows"].value - 1
        assert evaluations["fingerprint_matches"].metadata["differing_segments"].value == month


def test_a_lag_alerts_only_past_its_tolerance_and_recovers_once(receiver):
    """WARN (within tolerance) pages nobody; ERROR (past it) once; the same ERROR again, or
    ERROR -> WARN -> ERROR (a revert's new lake state lagging again) says nothing; the recovery
    once, and a WARN-only streak's recovery not at all (nobody heard of it)."""
    key = dg.AssetKey(["rds", "gold", TABLE])
    check = "in_sync_with_lake"
    warn, error = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR
    with dg.instance_for_test() as instance:
        cursor = None
        for passed, severity, expected in (
            (False, warn, []),  # a tolerated lag
            (False, warn, []),
            (True, warn, []),  # synced within the tolerance: nothing was said, nothing to undo
            (False, warn, []),
            (False, error, [("failing", "(ERROR)")]),
            (False, error, []),
            (False, warn, []),
            (False, error, []),  # once per red streak: a WARN again and back is no news
            (True, warn, [("recovered", "")]),
            (False, error, [("failing", "(ERROR)")]),  # a new streak
        ):
            instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(key, check, passed=passed, severity=severity)
            )
            cursor = alert_tick(instance, receiver, cursor)
            sent = receiver.take()
            assert [m["status"] for m in sent] == [s for s, _ in expected], sent
            assert all(text in m["text"] for m, (_, text) in zip(sent, expected, strict=True))
