"""Acceptance: a real `dagster dev` keeps RDS in step with the lake, and says so.

`dagster dev` (webserver, daemon, code server) runs as a subprocess on temporary folders only:
its own DAGSTER_HOME and free port, a private copy of the session's Silver lake as LAKE_URL, a
fresh database on the test PostgreSQL as RDS_URL, and a webhook receiver on loopback as
ALERT_WEBHOOK_URL. Nothing is mocked and nothing is called in process: the test talks to Dagster
only through its GraphQL API (as the UI does) and reads the platform only through
`goldctl status --json` (as an operator does).

(a) The Gold assets materialized through `launchRun` (the UI's Materialize button) succeed, and
    every check of every Gold asset, read back through GraphQL, passed in that run.
(b) A Parquet file added by hand to a Gold table's current lake location: goldctl's verdict shows
    the lag, the RDS asset's `in_sync_with_lake` turns failing (WARN, recorded by the sensor)
    before the sync run starts, and within 60 s (sensor interval 15 s) goldctl shows every table
    in sync again with the new rows in RDS, through exactly one sensor-launched sync run, and the
    check is green again. Alerts: exactly one failure and one recovery for the lag; any other check
    the schedule caught has exactly one of each too.

Every wait is on a condition with a deadline: the sensor and the daemon run on their own clock,
and under load a tick or a run start takes longer, never a different order.
"""

from __future__ import annotations

import time
from collections import Counter

import psycopg
import pytest

from platform_assets.backfills import reload_months_job_name
from platform_assets.keys import LAKE_CHECKS, RDS_CHECKS
from platform_assets.serving import ledger
from platform_assets.specs import GOLD_TABLES
from tests.support.dagster_dev import DagsterDev, dev_env, goldctl_status, sensor_ticks
from tests.support.lake_edits import TABLE, add_outside_file, table_in_sync
from tests.support.webhook import webhook_receiver

LOCATION = "gold_platform"
REPO = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}
IN_SYNC_WITHIN_S = 60


def gold_keys() -> list[list[str]]:
    return [[layer, "gold", spec.name] for spec in GOLD_TABLES for layer in ("lake", "rds")]


def check_execution(dev: DagsterDev, path: list[str], check: str, run_id: str) -> dict:
    """The execution of one check in one run (the 10-minute schedule may have run it since)."""
    data = dev.graphql(
        """query ($key: AssetKeyInput!, $check: String!) {
             assetCheckExecutions(assetKey: $key, checkName: $check, limit: 10) {
               runId status evaluation { success severity checkName } } }""",
        {"key": {"path": path}, "check": check},
    )
    executions = [e for e in data["assetCheckExecutions"] if e["runId"] == run_id]
    assert len(executions) == 1, (path, check, data["assetCheckExecutions"])
    return executions[0]


def in_sync_executions(dev: DagsterDev, table: str, limit: int = 10) -> list[dict]:
    """The latest `in_sync_with_lake` executions of `rds/gold/<table>`, newest first."""
    data = dev.graphql(
        """query ($key: AssetKeyInput!, $check: String!, $limit: Int!) {
             assetCheckExecutions(assetKey: $key, checkName: $check, limit: $limit) {
               runId status evaluation { success severity timestamp
                 metadataEntries { label ... on TextMetadataEntry { text } } } } }""",
        {"key": {"path": ["rds", "gold", table]}, "check": "in_sync_with_lake", "limit": limit},
    )
    return data["assetCheckExecutions"]


def wait_for(what: str, condition, timeout: float, dev: DagsterDev):
    """Poll `condition()` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not within {timeout:.0f} s\n{dev.log_tail()}"
        time.sleep(1)


def latest_materialization(dev: DagsterDev, path: list[str]) -> dict:
    data = dev.graphql(
        """query ($key: AssetKeyInput!) { assetOrError(assetKey: $key) {
             ... on Asset { assetMaterializations(limit: 1) {
               runId description
               metadataEntries { label ... on TextMetadataEntry { text } } } } } }""",
        {"key": {"path": path}},
    )
    [event] = data["assetOrError"]["assetMaterializations"]
    return event


def instigator_statuses(dev: DagsterDev) -> dict[str, str]:
    data = dev.graphql(
        """query ($repo: RepositorySelector!) {
             sensorsOrError(repositorySelector: $repo) {
               ... on Sensors { results { name sensorState { status } } } }
             schedulesOrError(repositorySelector: $repo) {
               ... on Schedules { results { name scheduleState { status } } } } }""",
        {"repo": REPO},
    )
    sensors = {s["name"]: s["sensorState"]["status"] for s in data["sensorsOrError"]["results"]}
    schedules = {
        s["name"]: s["scheduleState"]["status"] for s in data["schedulesOrError"]["results"]
    }
    return {**sensors, **schedules}


def launch_backfill(dev: DagsterDev, job: str, partitions: list[str]) -> str:
    """What the job's Partitions tab -> Launch backfill does."""
    data = dev.graphql(
        """mutation ($params: LaunchBackfillParams!) {
          launchPartitionBackfill(backfillParams: $params) {
            __typename
            ... on LaunchBackfillSuccess { backfillId }
            ... on PythonError { message }
            ... on PartitionSetNotFoundError { message }
          } }""",
        {
            "params": {
                "selector": {
                    "partitionSetName": f"{job}_partition_set",
                    "repositorySelector": REPO,
                },
                "partitionNames": partitions,
            }
        },
    )["launchPartitionBackfill"]
    assert data["__typename"] == "LaunchBackfillSuccess", data
    return data["backfillId"]


def wait_backfill(dev: DagsterDev, backfill_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = dev.graphql(
            """query ($id: String!) { partitionBackfillOrError(backfillId: $id) {
                 ... on PartitionBackfill { status } } }""",
            {"id": backfill_id},
        )["partitionBackfillOrError"]["status"]
        if status not in ("REQUESTED", "CANCELING", "FAILING") or time.monotonic() > deadline:
            return status
        time.sleep(2)


def by_table(report: dict) -> dict[str, dict]:
    return {t["table"]: t for t in report["tables"]}


@pytest.fixture
def dagster_dev(local_lake, serving, tmp_path):
    """`dagster dev` on temp folders; the whole process group is ended on teardown."""
    with webhook_receiver("/hooks/acceptance") as receiver:
        env = dev_env(tmp_path / "dagster_home", local_lake.url, serving.url, receiver.url)
        dev = DagsterDev(env, tmp_path / "dagster_dev.log")
        dev.start()
        try:
            dev.wait_ready(timeout=120)
            yield dev, env, local_lake, receiver
        finally:
            dev.stop()


def test_dagster_dev_builds_checks_and_follows_an_outside_change(dagster_dev):
    dev, env, lake, receiver = dagster_dev
    assert instigator_statuses(dev) == {
        "lake_change_sensor": "RUNNING",
        "check_alert_sensor": "RUNNING",
        "rds_gold_checks_every_10_min": "RUNNING",
    }

    # (a) Materialize the Gold layer the way the UI's button does, read the checks back
    run_id = dev.launch(gold_keys())
    assert dev.wait_run(run_id, timeout=180) == "SUCCESS", dev.log_tail()
    for spec in GOLD_TABLES:
        for layer, checks in (("lake", LAKE_CHECKS), ("rds", RDS_CHECKS)):
            for check in checks:
                execution = check_execution(dev, [layer, "gold", spec.name], check, run_id)
                assert execution["status"] == "SUCCEEDED", (spec.name, check, execution)
                assert execution["evaluation"]["success"] is True

    code, report = goldctl_status(env)
    assert code == 0, report
    before = by_table(report)
    assert all(t["in_sync"] and t["rds_rows"] == t["lake_rows"] > 0 for t in before.values())

    # (b) An outside change: one more Parquet file in the table's current version folder
    added, _ = add_outside_file(lake, TABLE)
    changed_at = time.monotonic()
    # goldctl's verdict, read in process right away: a goldctl subprocess took longer under load
    # than the sensor tick, run start and sync together, and found the copy in sync already
    lagging = table_in_sync(lake, env["RDS_URL"], TABLE)
    assert not lagging.in_sync and lagging.severity == "warn", lagging  # visible, not silent
    assert lagging.lake_rows == before[TABLE]["lake_rows"] + added
    state_id = lagging.lake_version
    assert state_id.startswith(before[TABLE]["lake_version"] + "+")

    # the UI shows the lag on the RDS asset within one sensor tick, before the sync runs (read
    # from the history: by the time we look, the sync run may already be the latest execution)
    def red_in_the_ui():
        return next(
            (
                e
                for e in in_sync_executions(dev, TABLE)
                if e["runId"] == "" and e["status"] == "FAILED"
            ),
            None,
        )

    red = wait_for("a failing in_sync_with_lake", red_in_the_ui, IN_SYNC_WITHIN_S, dev)
    assert red["evaluation"]["severity"] == "WARN", red
    red_meta = {m["label"]: m.get("text") for m in red["evaluation"]["metadataEntries"]}
    assert red_meta["lake_version"] == state_id
    assert red_meta["rds_version"] == before[TABLE]["rds_version"]

    while True:
        asked_at = time.monotonic() - changed_at  # goldctl reads the state after this
        code, report = goldctl_status(env)
        if code == 0:
            break
        assert asked_at < IN_SYNC_WITHIN_S, (
            f"not in sync {asked_at:.0f} s after the change: {report}\n"
            f"sync runs: {dev.runs('gold/table', TABLE)}\n{dev.log_tail()}"
        )
        time.sleep(2)
    assert asked_at < IN_SYNC_WITHIN_S
    after = by_table(report)
    assert all(t["in_sync"] for t in after.values()), report
    assert after[TABLE]["rds_version"] == state_id
    assert after[TABLE]["rds_rows"] == before[TABLE]["rds_rows"] + added
    for spec in GOLD_TABLES:
        if spec.name != TABLE:
            assert after[spec.name]["rds_version"] == before[spec.name]["rds_version"]

    # exactly one sync run, launched by the sensor under the table+state run key, after the
    # red evaluation was on record
    syncs = dev.runs("gold/lake_version", state_id)
    assert len(syncs) == 1, syncs
    tags = {t["key"]: t["value"] for t in syncs[0]["tags"]}
    assert tags["dagster/sensor_name"] == "lake_change_sensor"
    assert tags["gold/lake_version"] == state_id
    assert dev.wait_run(syncs[0]["runId"], timeout=60) == "SUCCESS"
    assert red["evaluation"]["timestamp"] <= syncs[0]["creationTime"]
    # ...and green again the moment the sync run ends: its own check, or (when the sensor
    # recorded the lag over the run's spinner meanwhile) the run's verdict re-asserted over it
    [green] = in_sync_executions(dev, TABLE, limit=1)
    assert green["status"] == "SUCCEEDED", green
    if green["runId"] != syncs[0]["runId"]:
        meta = {m["label"]: m.get("text") for m in green["evaluation"]["metadataEntries"]}
        assert green["runId"] == "" and meta["rds_version"] == state_id, green
        assert meta["evaluated_by"] in (f"run {syncs[0]['runId'][:8]}", "lake_change_sensor")

    # the outside change is on record as a runless materialization of the lake asset
    event = latest_materialization(dev, ["lake", "gold", TABLE])
    metadata = {m["label"]: m.get("text") for m in event["metadataEntries"]}
    assert metadata["version"] == state_id
    assert event["runId"] != run_id and "lake_change_sensor" in event["description"]
    # ...and the sync run's checks passed on the new state
    for check in RDS_CHECKS:
        execution = check_execution(dev, ["rds", "gold", TABLE], check, syncs[0]["runId"])
        assert execution["status"] == "SUCCEEDED"
        assert execution["evaluation"]["success"] is True

    # alerts: none. The lag stayed within its tolerance (shown on the asset, paging nobody);
    # asserted once the alert sensor has ticked after the sync run's green
    synced_at = dev.graphql(
        "query ($id: ID!) { runOrError(runId: $id) { ... on Run { endTime } } }",
        {"id": syncs[0]["runId"]},
    )["runOrError"]["endTime"]
    wait_for(
        "a check_alert_sensor tick after the sync",
        lambda: [
            t
            for t in sensor_ticks(dev, synced_at, sensor="check_alert_sensor")
            if t["endTimestamp"]
        ],
        60,
        dev,
    )
    posts = list(receiver.posts)
    assert not [m for m in posts if state_id in m["text"]], posts  # nothing about this lag
    failing = Counter(m["fields"].get("check") for m in posts if m["status"] == "failing")
    recovered = Counter(m["fields"].get("check") for m in posts if m["status"] == "recovered")
    assert failing == recovered, posts  # whatever the build caught on the way is over

    # (c) A backfill of two months of a partitioned copy, launched as from the job's Partitions
    # tab: one run per month, those months reloaded, the others untouched
    partitioned = next(s.name for s in GOLD_TABLES if s.partitioned)
    months = ["2013-04", "2013-05"]
    with psycopg.connect(env["RDS_URL"], autocommit=True) as conn:
        before = ledger.read_partitions(conn, partitioned)
    backfill = launch_backfill(dev, reload_months_job_name(partitioned), months)
    assert wait_backfill(dev, backfill, timeout=150) in ("COMPLETED", "COMPLETED_SUCCESS")
    with psycopg.connect(env["RDS_URL"], autocommit=True) as conn:
        after = ledger.read_partitions(conn, partitioned)
    reloaded = sorted(m for m, row in after.items() if row.loaded_at != before[m].loaded_at)
    assert reloaded == months, dev.log_tail()
    assert goldctl_status(env)[0] == 0
