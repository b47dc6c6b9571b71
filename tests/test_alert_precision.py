"""Signals that are true in both directions, on one real `dagster dev` for the module.

- A run with a malformed RDS_URL against a healthy copy fails as a run; its checks are not
  failed (never judged), and the first sensor tick after it records the copy's real state: every
  RDS check green again, the copy the ledger holds re-asserted, no alert.
- A change colliding with the check schedule: while the check run judges the table (its reads
  held on the table's sync lock, so the collision lasts as long as the test needs), the first
  sensor tick after the change records the lag (a WARN with the new lake version), requests the
  sync and says so in its log; row count and fingerprint stay green; one sync run brings the
  copy in sync right after the check run ends; a lag within its tolerance pages nobody.

Talks to Dagster only through GraphQL (what the UI reads); waits are conditions with deadlines.
"""

from __future__ import annotations

import time

import pytest

from platform_assets.keys import RDS_CHECKS
from tests.conftest import gold_built
from tests.support.copies import sync_lock_held
from tests.support.dagster_dev import (
    BAD_RDS,
    DagsterDev,
    dev_env,
    executions,
    launch_checks,
    launch_job,
    run_info,
    sensor_ticks,
    shown,
    shows_green,
    wait_for,
)
from tests.support.lake_edits import add_outside_file, table_in_sync
from tests.support.webhook import webhook_receiver

TABLE = "airport_daily_weather"
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def platform(silver_lake_dir, pg_url, tmp_path_factory):
    """Gold built, then `dagster dev` on it; its first tick records the copies, all green."""
    root = tmp_path_factory.mktemp("alert-precision")
    with (
        gold_built(silver_lake_dir, pg_url, root) as (lake, serving),
        webhook_receiver("/hooks/precision") as receiver,
    ):
        env = dev_env(root / "dagster_home", lake.url, serving.url, receiver.url)
        dev = DagsterDev(env, root / "dagster_dev.log")
        dev.start()
        try:
            dev.wait_ready(timeout=120)
            wait_for("the copy recorded green", lambda: shows_green(dev, TABLE, [
                "in_sync_with_lake"]), TIMEOUT_S, dev)  # fmt: skip
            yield dev, lake, serving, receiver
        finally:
            dev.stop()


def _ticks_after(
    dev: DagsterDev, at: float, n: int, sensor: str = "lake_change_sensor"
) -> list[dict]:
    return wait_for(
        f"{n} finished {sensor} tick(s) after {at}",
        lambda: (
            (ticks := [t for t in sensor_ticks(dev, at, sensor=sensor) if t["endTimestamp"]])[
                n - 1 :
            ]
            and ticks
        ),
        TIMEOUT_S,
        dev,
    )


def _alerts_after_judging(dev: DagsterDev, receiver, at: float) -> list[dict]:
    """Every alert sent once `check_alert_sensor` has judged what was recorded by `at`: the
    messages of its first tick that started later (silence is asserted, not hoped for)."""
    _ticks_after(dev, at, 1, sensor="check_alert_sensor")
    return list(receiver.posts)


def test_a_misconfigured_run_leaves_a_healthy_copy_green(platform):
    dev, _, _, receiver = platform
    receiver.take()
    run = launch_job(dev, "__ASSET_JOB", BAD_RDS, keys=[["rds", "gold", TABLE]])
    assert dev.wait_run(run, timeout=TIMEOUT_S) == "FAILURE"
    ended = run_info(dev, run)["endTime"]
    for check in RDS_CHECKS:  # planned, never judged: not a failed check of a healthy copy
        [execution] = [e for e in executions(dev, TABLE, check) if e["runId"] == run]
        assert execution["status"] != "FAILED", (check, execution)

    first, second = _ticks_after(dev, ended, 2)[:2]
    assert first["status"] in ("SUCCESS", "SKIPPED"), first
    assert shows_green(dev, TABLE, RDS_CHECKS)  # within one tick
    for check in RDS_CHECKS:
        latest = executions(dev, TABLE, check, limit=1)[0]
        assert latest["runId"] == "" and latest["status"] == "SUCCEEDED", (check, latest)
        assert latest["evaluation"]["timestamp"] < second["timestamp"]
    data = dev.graphql(
        """query ($key: AssetKeyInput!) { assetOrError(assetKey: $key) {
             ... on Asset { assetMaterializations(limit: 1) { runId description } } } }""",
        {"key": {"path": ["rds", "gold", TABLE]}},
    )
    [materialization] = data["assetOrError"]["assetMaterializations"]
    assert (
        materialization["runId"] == ""
        and "failed without changing it" in (materialization["description"])
    )
    assert _alerts_after_judging(dev, receiver, second["endTimestamp"]) == []  # none deserved


def test_a_change_colliding_with_the_check_run(platform):
    dev, lake, serving, receiver = platform
    receiver.take()
    with sync_lock_held(serving.url, TABLE):  # the check run's reads of the table wait here
        checks = launch_checks(dev)  # what the 10-minute schedule launches
        wait_for("the check run started", lambda: run_info(dev, checks)["status"] == "STARTED",
                 TIMEOUT_S, dev)  # fmt: skip
        changed = time.time()
        add_outside_file(lake, TABLE)
        state_id = table_in_sync(lake, serving.url, TABLE).lake_version

        first, second = _ticks_after(dev, changed, 2)[:2]
        assert run_info(dev, checks)["status"] == "STARTED"  # the collision is real
        # the sync is requested in the first tick after the change...
        [sync] = dev.runs("gold/lake_version", state_id)
        assert sync["runId"] in first["runIds"], (first, sync)
        # ...which says what it decided for the table and why
        said = [e["message"] for e in first["logEvents"]["events"]]
        assert any(f"gold.{TABLE}: " in m and "queued behind check run" in m for m in said), said

        # ...and records the lag: a runless WARN with the new lake version, before the next tick
        def lake_version(execution):
            meta = execution["evaluation"]["metadataEntries"]
            return {m["label"]: m.get("text") for m in meta}.get("lake_version")

        red = [
            e
            for e in executions(dev, TABLE, "in_sync_with_lake")
            if e["runId"] == "" and e["status"] == "FAILED" and lake_version(e) == state_id
        ]
        assert red, executions(dev, TABLE, "in_sync_with_lake")
        first_red = min(red, key=lambda e: e["evaluation"]["timestamp"])
        assert first_red["evaluation"]["severity"] == "WARN"
        assert first_red["evaluation"]["timestamp"] < second["timestamp"]

    assert dev.wait_run(checks, timeout=TIMEOUT_S) == "SUCCESS"
    assert dev.wait_run(sync["runId"], timeout=TIMEOUT_S) == "SUCCESS"
    # the check run judged a copy that was only behind: row count and fingerprint green
    for check in ("row_count_matches", "fingerprint_matches"):
        [execution] = [e for e in executions(dev, TABLE, check) if e["runId"] == checks]
        assert execution["status"] == "SUCCEEDED", (check, execution)
    # one sync run, right after the check run's reads, brings the copy in sync: it judged
    # after every check of the check run had judged (it waited on the table's sync lock)
    judged = [
        e["evaluation"]["timestamp"]
        for check in RDS_CHECKS
        for e in executions(dev, TABLE, check)
        if e["runId"] == checks and e["evaluation"]
    ]
    [synced] = [
        e for e in executions(dev, TABLE, "in_sync_with_lake") if e["runId"] == sync["runId"]
    ]
    assert judged and synced["evaluation"]["timestamp"] >= max(judged), (judged, synced)
    assert table_in_sync(lake, serving.url, TABLE).in_sync
    assert len(dev.runs("gold/lake_version", state_id)) == 1

    # alerts: none. The lag stayed within its tolerance, row count and fingerprint green
    synced = run_info(dev, sync["runId"])["endTime"]
    assert _alerts_after_judging(dev, receiver, synced) == []


def test_the_asset_page_shows_the_lag_over_the_sync_runs_planned_check(platform, tmp_path):
    """The asset page shows a check's latest *planned* execution: a sync run's planned
    `in_sync_with_lake` would show a spinner over the lag until the sync lands. The sensor records
    the lag again over it, so the page keeps showing the lag (WARN) until the copy is in sync:
    read through GraphQL (what the page reads) and seen in a headless Chromium, screenshot kept."""
    from dashboard.browser import Browser, missing

    if missing():
        pytest.skip(missing())
    dev, lake, serving, _ = platform
    with sync_lock_held(serving.url, TABLE):  # the sync run waits here, its checks planned
        add_outside_file(lake, TABLE)
        state_id = table_in_sync(lake, serving.url, TABLE).lake_version
        [sync] = wait_for("the sync run", lambda: dev.runs("gold/lake_version", state_id),
                          TIMEOUT_S, dev)  # fmt: skip
        wait_for("the sync run started", lambda: run_info(dev, sync["runId"])["status"] ==
                 "STARTED", TIMEOUT_S, dev)  # fmt: skip

        def lag_shown():
            e = shown(dev, TABLE, "in_sync_with_lake")
            return e and e["runId"] == "" and e["status"] == "FAILED" and e

        lag = wait_for("the lag recorded over the sync's planned check", lag_shown, TIMEOUT_S, dev)
        assert lag["evaluation"]["severity"] == "WARN"
        assert run_info(dev, sync["runId"])["status"] == "STARTED"  # still judging: no spinner
        with Browser() as browser:
            browser.get(f"{dev.url}/assets/rds/gold/{TABLE}?view=checks")
            browser.wait_for(lambda: "in_sync_with_lake" in browser.text(), 120, "checks tab")
            text = browser.text()
            shot = browser.screenshot(tmp_path / "lag_on_the_asset_page.png")
        assert shot.stat().st_size > 10_000
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        at = lines.index("in_sync_with_lake")  # the checks list: name (twice), then status
        status = next(line for line in lines[at:] if line != "in_sync_with_lake")
        assert status == "Failed", lines[at - 4 : at + 6]  # the lag, not a spinner
        assert "In Progress" in lines  # the sync run's other checks are still running
    assert dev.wait_run(sync["runId"], timeout=TIMEOUT_S) == "SUCCESS"
    wait_for("green again", lambda: shows_green(dev, TABLE, ["in_sync_with_lake"]), TIMEOUT_S, dev)
