"""The freshness badge's pure logic: ages against the spec's warn/SLA windows -> colour, text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboard import badge
from platform_assets.specs import GOLD_BY_NAME

WARN, SLA = timedelta(hours=24), timedelta(hours=26)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(0), "green"),
        (-5 * H, "green"),  # clock skew: a ledger time in the future is fresh
        (23 * H, "green"),
        (WARN, "green"),  # the boundary belongs to the better colour
        (WARN + timedelta(seconds=1), "amber"),
        (25 * H, "amber"),
        (SLA, "amber"),
        (SLA + timedelta(seconds=1), "red"),
        (30 * 24 * H, "red"),
        (None, "red"),  # never synced
    ],
)
def test_colour_against_warn_and_sla(age, expected):
    assert badge.colour(age, WARN, SLA) == expected


def test_spec_windows_are_what_the_dashboard_judges_against():
    spec = GOLD_BY_NAME["carrier_daily_performance"]
    assert (spec.freshness_warn, spec.freshness_sla) == (WARN, SLA)


def test_worst_of_several_tables():
    assert badge.worst(["green", "amber", "green"]) == "amber"
    assert badge.worst(["green", "red", "amber"]) == "red"
    assert badge.worst(["green"]) == "green"
    assert badge.worst([]) == "red"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (42, "42 s"), (600, "10 min"), (5 * 3600, "5.0 h"), (3 * 86400, "3.0 d")],
)
def test_human_age(seconds, text):
    assert badge.human_age(timedelta(seconds=seconds)) == text


def test_make_badge_from_a_ledger_row():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    row = {
        "lake_version": "20261124T090000000000Z-abcd1234",
        "row_count": 5432,
        "lake_created_at": now - 25 * H,
        "loaded_at": now - 2 * H,
    }
    b = badge.make_badge("carrier_daily_performance", row, WARN, SLA, now=now)
    assert b.colour == "amber"  # judged on the data's age (built 25 h ago), not the sync's
    assert b.data_age == 25 * H and b.sync_age == 2 * H
    assert b.text == (
        "AMBER · gold.carrier_daily_performance shows lake version "
        "20261124T090000000000Z-abcd1234 · built 25.0 h ago, synced 2.0 h ago · 5,432 rows · "
        "warn > 24.0 h, SLA 26.0 h"
    )


def test_make_badge_without_a_ledger_row_is_red():
    b = badge.make_badge("airport_daily_weather", None, WARN, SLA)
    assert b.colour == "red" and b.lake_version is None
    assert "never synced" in b.text
