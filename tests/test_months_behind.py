"""One "behind" rule (ledger.unit_behind) for the sync's reload list and the in-sync check's
`months_behind`: a unit is behind when its ledger row does not hold the lake's segments for it,
whatever JSON made of the row's numbers (lists, not tuples)."""

from datetime import UTC, datetime

from platform_assets.serving import ledger


def _unit(segments: dict) -> ledger.LedgerRow:
    now = datetime.now(UTC)
    return ledger.LedgerRow(
        "t", "2013-01", "v1", "tok", 5, "fp", segments, now, now, 1.0, None, checksums=1
    )


def test_a_unit_holding_the_lakes_segments_is_not_behind():
    assert not ledger.unit_behind(_unit({"2013-01": [5, 7]}), {"2013-01": (5, 7)})


def test_a_unit_with_other_numbers_or_no_row_is_behind():
    assert ledger.unit_behind(_unit({"2013-01": [5, 7]}), {"2013-01": (5, 8)})
    assert ledger.unit_behind(_unit({"2013-01": [5, 7]}), None)  # the lake dropped the month
    assert ledger.unit_behind(None, {"2013-01": (5, 7)})  # a month the copy never held
