"""The lag clock: lag counts from when the platform first saw the lake leave the copy's state.

Real PostgreSQL, a real local lake, the real sync and `goldctl status`'s own function
(`status_report`). A lake `created_at` is edited in the manifest as an operator (or a skewed
clock) would leave it; "the platform saw it 20 minutes ago" is written into the heads table, as
a tick 20 minutes ago would have, so no test waits for a clock.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg

from dashboard.badge import AMBER, GREEN, RED, make_badge
from dashboard.data import badge_rows
from platform_assets.lake.tables import (
    MANIFEST,
    GoldLake,
    table_prefix,
)
from platform_assets.serving import heads
from platform_assets.specs import GOLD_BY_NAME, GOLD_TABLES
from platform_assets.status import status_report
from tests.support.copies import sync_spec
from tests.support.in_process import tick
from tests.support.lake_edits import add_outside_file, new_build

TABLE = "airport_daily_weather"
SPEC = GOLD_BY_NAME[TABLE]
TOLERANCE = SPEC.lag_tolerance.total_seconds()


def manifest_key(table: str = TABLE) -> str:
    return f"{table_prefix(table)}/{MANIFEST}"


def edit_created_at(lake, value: str, table: str = TABLE) -> None:
    data = json.loads(lake.read_bytes(manifest_key(table)))
    data["created_at"] = value
    lake.write_bytes(manifest_key(table), json.dumps(data).encode())


def statuses(lake, serving) -> dict:
    with serving.connect(autocommit=True) as conn:
        found, _ = status_report(list(GOLD_TABLES), GoldLake(lake), conn)
    return {s.table: s for s in found}


def others_fine(found: dict) -> None:
    for spec in GOLD_TABLES:
        if spec.name != TABLE:
            assert found[spec.name].in_sync and found[spec.name].severity == "ok", found[spec.name]


def seen_minutes_ago(serving, minutes: float, table: str = TABLE) -> None:
    """As if `minutes` had passed since the platform first saw the current head (and since
    the copy's last sync, which the lag is never counted from before)."""
    with serving.connect(autocommit=True) as conn:
        shift = (minutes, table)
        conn.execute(
            "UPDATE platform.lake_heads SET first_seen_at = first_seen_at - %s * interval '1 min' "
            "WHERE id = (SELECT max(id) FROM platform.lake_heads WHERE table_name = %s)",
            shift,
        )
        conn.execute(
            "UPDATE platform.sync_ledger SET loaded_at = loaded_at - %s * interval '1 min' "
            "WHERE table_name = %s",
            shift,
        )


def test_lag_after_a_revert_and_a_rollback_counts_from_when_the_lake_moved(built):
    instance, resources = built
    lake, serving = resources["lake"], resources["serving"]
    old = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    edit_created_at(lake, old)  # the build the copy holds is two hours old: a sane clock
    a = GoldLake(lake).current_state(TABLE).state_id
    assert statuses(lake, serving)[TABLE].in_sync  # the same state: in sync, no skew
    assert statuses(lake, serving)[TABLE].clock_skew is None

    # an outside file, synced; then deleted again (a revert): the copy holds A+file, lake A
    _, key = add_outside_file(lake, TABLE)
    assert sync_spec(lake, serving, SPEC).action == "loaded"
    lake.filesystem.delete_file(lake.path(key))
    reverted = statuses(lake, serving)
    st = reverted[TABLE]
    assert st.lake_version == a and not st.in_sync
    assert 0 <= st.lag_seconds < 60, st  # seconds since the revert, not two hours
    assert st.severity == "warn" and st.waiting == "pending", st
    others_fine(reverted)
    # the sensor asks for the state it synced before: a new episode, a new run key
    assert sync_spec(lake, serving, SPEC).action == "loaded"
    assert statuses(lake, serving)[TABLE].in_sync

    # a rollback to an older build: B built and synced, then A's manifest put back
    saved = lake.read_bytes(manifest_key())
    b = new_build(lake)
    assert sync_spec(lake, serving, SPEC).action == "loaded"
    lake.write_bytes(manifest_key(), saved)
    rolled = statuses(lake, serving)
    st = rolled[TABLE]
    assert st.lake_version == a and st.rds_version == b
    assert 0 <= st.lag_seconds < 60 and st.severity == "warn", st  # not ERROR at once
    others_fine(rolled)
    # ...and it grows from there: seen 20 minutes ago is beyond the 15-minute tolerance
    seen_minutes_ago(serving, 20)
    late = statuses(lake, serving)[TABLE]
    assert 1190 <= late.lag_seconds < 1260 and late.severity == "error", late


def test_created_at_in_the_future_or_far_past_is_that_tables_clock_skew(built):
    instance, resources = built
    lake, serving = resources["lake"], resources["serving"]
    statuses(lake, serving)

    # a new build whose clock is an hour ahead, not synced yet
    new_build(lake)
    edit_created_at(lake, (datetime.now(UTC) + timedelta(hours=1)).isoformat())
    found = statuses(lake, serving)
    st = found[TABLE]
    assert not st.in_sync and st.severity == "warn" and 0 <= st.lag_seconds < 60, st
    assert st.clock_skew and "in the future" in st.clock_skew
    others_fine(found)
    seen_minutes_ago(serving, 20)  # not frozen at 0: beyond the tolerance it is an error
    st = statuses(lake, serving)[TABLE]
    assert st.severity == "error" and st.lag_seconds > TOLERANCE, st

    # a build that claims to be ten years old: fresh, not red for good
    new_build(lake)
    edit_created_at(lake, (datetime.now(UTC) - timedelta(days=3653)).isoformat())
    found = statuses(lake, serving)
    st = found[TABLE]
    assert st.severity == "warn" and 0 <= st.lag_seconds < 60, st
    assert st.clock_skew and "before its version id" in st.clock_skew
    others_fine(found)
    # synced: in sync, the skew still reported, and the badge counts the data's age from when
    # the platform first saw it (green), not from ten years ago
    assert sync_spec(lake, serving, SPEC).action == "loaded"
    st = statuses(lake, serving)[TABLE]
    assert st.in_sync and st.severity == "ok" and st.clock_skew, st
    with psycopg.connect(serving.dashboard_url(), autocommit=True) as conn:
        row = badge_rows(conn, (TABLE,))[TABLE]
    badge = make_badge(
        TABLE, row, SPEC.freshness_warn, SPEC.freshness_sla, tolerance=SPEC.lag_tolerance
    )
    assert badge.colour == GREEN and row["ahead"] is None, badge.text


def test_a_garbled_created_at_is_that_tables_fault_only(built):
    instance, resources = built
    lake, serving = resources["lake"], resources["serving"]
    new_build(lake)
    edit_created_at(lake, "last tuesday, roughly")
    found = statuses(lake, serving)
    st = found[TABLE]
    assert st.severity == "error" and not st.in_sync
    assert "created_at 'last tuesday, roughly'" in st.reason and MANIFEST in st.reason
    others_fine(found)
    # the sensor's tick goes on with the other tables: an outside change of another table
    # still gets its sync request
    other = "carrier_daily_performance"
    first = tick(instance, resources, cursor=None)
    add_outside_file(lake, other)
    result = tick(instance, resources, cursor=first.cursor)
    assert [r.tags["gold/table"] for r in result.run_requests] == [other]

    # a naive timestamp is UTC, as the manifest contract says: no fault
    edit_created_at(lake, datetime.now(UTC).replace(tzinfo=None).isoformat())
    st = statuses(lake, serving)[TABLE]
    assert st.severity == "warn" and st.clock_skew is None, st


def test_the_badge_says_the_lake_is_ahead_since_when_and_why(built):
    instance, resources = built
    lake, serving = resources["lake"], resources["serving"]
    statuses(lake, serving)

    def badge():
        with psycopg.connect(serving.dashboard_url(), autocommit=True) as conn:
            row = badge_rows(conn, (TABLE,))[TABLE]
        return make_badge(
            TABLE, row, SPEC.freshness_warn, SPEC.freshness_sla, tolerance=SPEC.lag_tolerance
        )

    in_sync = badge()
    assert in_sync.colour == GREEN and in_sync.ahead is None, in_sync.text
    new = new_build(lake)
    statuses(lake, serving)  # an observer (goldctl, the sensor) sees the new head
    ahead = badge()
    assert ahead.colour == AMBER, ahead.text
    assert f"the lake holds a newer state ({new})" in ahead.text and "sync pending" in ahead.text
    seen_minutes_ago(serving, 20)
    late = badge()
    assert late.colour == RED and "(20 min)" in late.text, late.text
    # a refused sync says so, and until when
    with serving.connect(autocommit=True) as conn:
        conn.execute(
            "INSERT INTO platform.sync_refusals (table_name, lake_version, reason) "
            "VALUES (%s, %s, 'refusing to publish: a test reason')",
            (TABLE, new),
        )
    refused = badge()
    assert "sync refused: refusing to publish: a test reason" in refused.text
    assert "until the lake changes" in refused.text
    assert sync_spec(lake, serving, SPEC).action == "loaded"
    assert badge().colour == GREEN


def test_heads_record_episodes_not_states(serving):
    """A -> B -> A is three episodes; seeing A again while it is the head adds nothing."""
    from dataclasses import dataclass

    @dataclass
    class State:
        table: str
        state_id: str
        created_at: datetime

    with serving.connect(autocommit=True) as conn:
        from platform_assets.serving import ledger

        ledger.bootstrap(conn, serving.dashboard_role)
        now = datetime.now(UTC)
        for state_id in ("A", "A", "B", "A", "A"):
            heads.record(conn, [State("t", state_id, now)], "test")
        rows = conn.execute(
            "SELECT state_id FROM platform.lake_heads WHERE table_name = 't' ORDER BY id"
        ).fetchall()
    assert [r[0] for r in rows] == ["A", "B", "A"]
