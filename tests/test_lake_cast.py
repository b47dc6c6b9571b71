"""Arrow data meets its target types in one place (`lake_types.cast_batches`, used by the engine's
results, landed bronze and the loader): exact conversions pass, one that would change a value
fails naming it, and a batch already of the type passes untouched."""

import pyarrow as pa
import pytest

from platform_assets.lake import types as lake_types


def test_exact_conversions_reach_the_lake_types():
    batch = pa.record_batch(
        {"n": pa.array([1, 2], pa.uint32()), "s": pa.array(["a", "b"], pa.large_string())}
    )
    reader = lake_types.lake_reader(pa.RecordBatchReader.from_batches(batch.schema, [batch]))
    table = reader.read_all()
    assert table.schema == pa.schema([("n", pa.int64()), ("s", pa.string())])
    assert table.to_pydict() == {"n": [1, 2], "s": ["a", "b"]}


def test_a_conversion_that_would_change_a_value_fails():
    nanos = pa.array([1_000_000_001], pa.timestamp("ns"))  # 1 ns past a microsecond
    batch = pa.record_batch({"t": nanos})
    with pytest.raises(pa.ArrowInvalid, match="would lose data"):
        lake_types.lake_reader(pa.RecordBatchReader.from_batches(batch.schema, [batch])).read_all()


def test_a_batch_of_the_target_type_passes_as_it_is():
    batch = pa.record_batch({"n": pa.array([1], pa.int64())})
    (out,) = list(lake_types.cast_batches(batch.schema, [batch]))
    assert out.equals(batch)
