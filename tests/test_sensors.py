"""`lake_change_sensor` ticks on a real instance: quiet when in sync, one sync per outside change.

The sensor is the one in `defs` (what `dagster dev` runs), evaluated with a real
`DagsterInstance` that holds the materializations of a real build, a real lake and a real
PostgreSQL. An "outside change" is what an analyst's `INSERT INTO` leaves behind: one more
Parquet file in the current version folder of a Gold table.
"""

from __future__ import annotations

import json
import uuid

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun

from platform_assets.definitions import defs
from platform_assets.keys import lake_key, rds_key
from platform_assets.lake.tables import GoldLake
from platform_assets.specs import GOLD_BY_NAME, GOLD_TABLES
from platform_assets.status import table_status
from tests.conftest import GOLD, materialize  # noqa: F401 (GOLD: imported from here)
from tests.support.in_process import decided, others, store, tick
from tests.support.lake_edits import add_outside_file

TABLE = "airport_daily_weather"  # unpartitioned; primary key (flight_date, origin)


def test_sensor_is_registered_running_and_targets_rds_assets():
    sensor = defs.resolve_sensor_def("lake_change_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 4  # every pass of the daemon's 5 s loop
    assert set(sensor.asset_selection.resolve(defs.resolve_asset_graph())) == {
        rds_key(spec.name) for spec in GOLD_TABLES
    }


def test_no_request_after_a_build_inside_dagster(built):
    instance, resources = built
    result = tick(instance, resources, cursor=None)

    assert result.run_requests == []
    assert result.asset_events == []  # Dagster produced these versions: nothing to record
    gold = GoldLake(resources["lake"])
    seen = json.loads(result.cursor)["seen"]
    assert seen == {spec.name: gold.current_state(spec.name).state_id for spec in GOLD_TABLES}

    again = tick(instance, resources, cursor=result.cursor)
    assert again.run_requests == [] and again.asset_events == []
    assert json.loads(again.cursor)["seen"] == seen


def test_outside_change_records_materialization_and_requests_one_sync(built):
    instance, resources = built
    lake, serving = resources["lake"], resources["serving"]
    first = tick(instance, resources, cursor=None)
    published = GoldLake(lake).current_state(TABLE)

    added, _ = add_outside_file(lake)
    state = GoldLake(lake).current_state(TABLE)
    assert state.changed_outside and state.version == published.version
    assert state.state_id == f"{published.version}+{state.token[:8]}"

    result = tick(instance, resources, cursor=first.cursor)

    # one sync run for the lagging copy, keyed by table and lake state
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.run_key.rsplit("@", 1)[0] == f"sync:{TABLE}:{state.state_id}"  # + episode
    assert request.asset_selection == [rds_key(TABLE)]
    assert request.tags["gold/table"] == TABLE
    assert request.tags["gold/lake_version"] == state.state_id

    # the outside change itself is recorded as a runless materialization of the lake asset, and
    # the lag as a failing in-sync evaluation of the RDS asset (tests/test_copy_record.py)
    event, lag = others(result)
    assert decided(result) == {TABLE: "requested"}  # in sync -> requested, on the RDS asset
    assert isinstance(lag, dg.AssetCheckEvaluation) and lag.asset_key == rds_key(TABLE)
    assert isinstance(event, dg.AssetMaterialization)
    assert event.asset_key == lake_key("gold", TABLE)
    assert event.metadata["version"].value == state.state_id
    assert event.metadata["token"].value == state.token
    assert event.metadata["changed_outside_dagster"].value is True
    assert event.metadata["dagster/row_count"].value == published.manifest.row_count + added

    cursor = json.loads(result.cursor)["seen"]
    assert cursor[TABLE] == state.state_id
    for spec in GOLD_TABLES:
        if spec.name != TABLE:
            assert cursor[spec.name] == json.loads(first.cursor)["seen"][spec.name]

    # the daemon stores the events; do what it does, then tick again: nothing new is recorded
    # and the only request repeats the same run_key (the daemon never launches a run_key twice)
    store(instance, result)
    second = tick(instance, resources, cursor=result.cursor)
    assert second.asset_events == []
    assert [r.run_key for r in second.run_requests] == [request.run_key]
    assert json.loads(second.cursor)["seen"] == cursor

    # a fresh cursor (sensor reset) finds the recorded version on the instance: no duplicate
    reset = tick(instance, resources, cursor=None)
    assert reset.asset_events == []
    assert [r.run_key for r in reset.run_requests] == [request.run_key]

    # the requested run brings RDS back in sync; after it the sensor is quiet again
    assert materialize(f"key:rds/gold/{TABLE}", resources, instance=instance).success
    with serving.connect(autocommit=True) as conn:
        status = table_status(GOLD_BY_NAME[TABLE], GoldLake(lake), conn)
    assert status.table == TABLE and status.in_sync
    assert status.rds_rows == published.manifest.row_count + added
    after = tick(instance, resources, cursor=second.cursor)
    assert after.run_requests == [] and others(after) == []
    assert decided(after) == {TABLE: "in_sync"}


def test_a_second_outside_change_gets_a_new_run_key(built):
    instance, resources = built
    lake = resources["lake"]
    first = tick(instance, resources, cursor=None)
    add_outside_file(lake)
    one = tick(instance, resources, cursor=first.cursor)
    add_outside_file(lake)
    two = tick(instance, resources, cursor=one.cursor)

    keys = [r.run_key for r in one.run_requests] + [r.run_key for r in two.run_requests]
    assert len(keys) == 2 and len(set(keys)) == 2
    state_id = GoldLake(lake).current_state(TABLE).state_id
    assert keys[1].rsplit("@", 1)[0] == f"sync:{TABLE}:{state_id}"
    assert [type(e) for e in others(two)] == [dg.AssetMaterialization, dg.AssetCheckEvaluation]


def test_no_request_while_the_table_is_in_an_active_run(built):
    """A build in progress publishes before its run ends: the sensor must not race it."""
    instance, resources = built
    first = tick(instance, resources, cursor=None)
    add_outside_file(resources["lake"])
    run = instance.add_run(
        DagsterRun(
            job_name="__ASSET_JOB",
            run_id=uuid.uuid4().hex,
            status=dg.DagsterRunStatus.STARTED,
            asset_selection=frozenset({lake_key("gold", TABLE), rds_key(TABLE)}),
        )
    )

    result = tick(instance, resources, cursor=first.cursor)
    assert result.run_requests == []
    # nor record the run's own new version as an outside change before the run stores it
    assert others(result) == [] and decided(result) == {TABLE: "running"}
    assert json.loads(result.cursor)["seen"][TABLE] == json.loads(first.cursor)["seen"][TABLE]

    # once the run is over the sensor looks again: the change is recorded and synced
    instance.report_run_failed(run)
    later = tick(instance, resources, cursor=result.cursor)
    state = GoldLake(resources["lake"]).current_state(TABLE)
    assert [r.run_key.rsplit("@", 1)[0] for r in later.run_requests] == [
        f"sync:{TABLE}:{state.state_id}"
    ]
    assert [e.asset_key for e in others(later)] == [lake_key("gold", TABLE), rds_key(TABLE)]


def test_a_new_instance_learns_the_months_it_can_backfill(built):
    """A fresh `dagster dev` instance (no sync run there yet) gets the reload-months partitions
    from the first tick; an instance that already has them gets no request."""
    from platform_assets.gold_assets.months import months_partitions

    instance, resources = built
    expected = [f"2013-{m:02d}" for m in range(1, 13)]
    with dg.instance_for_test() as fresh:
        result = tick(fresh, resources, cursor=None)
        added = {
            r.partitions_def_name: list(r.partition_keys)
            for r in result.dynamic_partitions_requests
        }
        assert added == {
            months_partitions(spec).name: expected for spec in GOLD_TABLES if spec.partitioned
        }
    assert tick(instance, resources, cursor=None).dynamic_partitions_requests == []


def _run(instance, status, **kwargs) -> DagsterRun:
    run = DagsterRun(job_name="__ASSET_JOB", run_id=uuid.uuid4().hex, status=status, **kwargs)
    return instance.add_run(run)


def test_a_check_run_does_not_hold_back_the_lag_or_the_sync(built):
    """A schedule collision: the lag is recorded and the sync requested in the same tick (the
    sync waits for the check run's reads on the table's sync lock, not for a later tick)."""
    instance, resources = built
    first = tick(instance, resources, cursor=None)
    checking = _run(
        instance,
        dg.DagsterRunStatus.STARTED,
        asset_check_selection=frozenset({dg.AssetCheckKey(rds_key(TABLE), "row_count_matches")}),
    )
    add_outside_file(resources["lake"])
    result = tick(instance, resources, cursor=first.cursor)
    state = GoldLake(resources["lake"]).current_state(TABLE)
    assert [r.run_key.rsplit("@", 1)[0] for r in result.run_requests] == [
        f"sync:{TABLE}:{state.state_id}"
    ]
    assert [type(e) for e in others(result)] == [dg.AssetMaterialization, dg.AssetCheckEvaluation]
    [observation] = [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]
    assert f"queued behind check run {checking.run_id[:8]}" in observation.description


def test_a_refusal_is_not_requested_again_a_transient_failure_is_after_backoff(built):
    from platform_assets import retry_rule
    from platform_assets.serving import ledger

    instance, resources = built
    first = tick(instance, resources, cursor=None)
    add_outside_file(resources["lake"])
    state = GoldLake(resources["lake"]).current_state(TABLE)
    tags = {"gold/table": TABLE, "gold/lake_version": state.state_id, "gold/attempt": "1"}

    # the sync of this lake state failed transiently: backing off, then attempt 2
    failed = _run(instance, dg.DagsterRunStatus.STARTED, tags=tags)
    instance.report_run_failed(failed)
    waiting = tick(instance, resources, cursor=first.cursor)
    assert waiting.run_requests == [] and decided(waiting) == {TABLE: "backing_off"}
    assert retry_rule.sensor_backoff_s(1) > retry_rule.BASE_DELAY_S * 2**retry_rule.OP_RETRIES / 2

    # ...a refusal of the same state (what the sync writes to the ledger) is never asked again
    with resources["serving"].connect(autocommit=True) as conn:
        ledger.record_refusal(conn, TABLE, state.state_id, "the table shrank by 90%")
    refused = tick(instance, resources, cursor=waiting.cursor)
    assert refused.run_requests == [] and decided(refused) == {TABLE: "refused"}
    [observation] = [e for e in refused.asset_events if isinstance(e, dg.AssetObservation)]
    assert "the table shrank by 90%" in observation.description
