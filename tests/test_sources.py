"""The scale generator: N synthetic years, deterministic, each year different."""

import pyarrow.compute as pc
import pytest

from platform_assets import sources


def test_scaled_flights_replicate_years_deterministically():
    first = list(sources.batches("flights", scale_years=2))
    again = list(sources.batches("flights", scale_years=2))
    assert [len(t) for t in first] == [336_776, 336_776]
    assert pc.unique(first[0]["year"]).to_pylist() == [2013]
    assert pc.unique(first[1]["year"]).to_pylist() == [2014]
    assert first[1]["time_hour"][0].as_py().startswith("2014-")
    assert first[1].equals(again[1])  # deterministic
    # the synthetic year is not a copy: delays are shifted by a small deterministic jitter
    assert not first[1]["dep_delay"].equals(first[0]["dep_delay"])
    diff = pc.subtract(first[1]["dep_delay"], first[0]["dep_delay"])
    assert pc.max(pc.abs(diff)).as_py() <= 5


def test_scale_below_one_is_refused():
    with pytest.raises(ValueError, match="scale_years must be >= 1"):
        next(sources.batches("flights", scale_years=0))


def test_unknown_source_table_is_refused():
    with pytest.raises(ValueError, match="unknown source table"):
        sources.read_raw("passengers")
