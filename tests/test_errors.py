"""The sync's failures are classed by what heals them, from the real foreign exceptions."""

from __future__ import annotations

import psycopg
import pyarrow as pa
import pytest

from platform_assets.lake.tables import LakeFault
from platform_assets.serving.errors import (
    DataRefused,
    SyncMisconfigured,
    SyncRefused,
    SyncTransient,
    classify,
)
from resources.serving_db import ServingDatabase


def _raised(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the exception is what is tested
        return exc
    raise AssertionError("no exception")


def test_data_the_database_rejects_is_a_recorded_refusal(serving):
    with serving.connect(autocommit=True) as conn:
        exc = _raised(lambda: conn.execute("SELECT 'x'::int"))
    failure = classify(exc, "t", "COPY")
    assert isinstance(failure, DataRefused) and failure.recorded and not failure.retryable
    assert "gold.t" in str(failure) and "COPY" in str(failure) and "SQLSTATE 22" in str(failure)


def test_a_lost_server_is_transient_and_never_shows_the_password(tmp_path):
    url = "postgresql://u:s3cret@127.0.0.1:9/db"
    exc = _raised(lambda: psycopg.connect(url, connect_timeout=2))
    failure = classify(exc, "t", "connecting", url)
    assert isinstance(failure, SyncTransient) and failure.retryable and not failure.recorded
    assert "s3cret" not in str(failure) and "serving database failed during connecting" in str(
        failure
    )
    settings = _raised(lambda: ServingDatabase(url=url, connect_timeout_s=2).connect())
    assert isinstance(classify(settings, "t"), SyncTransient)


def test_a_wrong_setting_is_neither_retried_nor_recorded():
    exc = _raised(lambda: ServingDatabase(url="mysql://x@h/db").conninfo())
    failure = classify(exc, "t")
    assert isinstance(failure, SyncMisconfigured) and not failure.retryable
    assert not failure.recorded and failure.exit_code == 2 and "RDS_URL" in str(failure)


@pytest.mark.parametrize(
    "make",
    [
        lambda: pa.array(["x"]).cast(pa.int64()),  # ArrowInvalid (a ValueError)
        lambda: pa.array([1]).cast(pa.struct([("a", pa.int8())])),  # ArrowNotImplementedError
    ],
)
def test_a_cast_the_loader_cannot_make_is_a_data_refusal(make):
    failure = classify(_raised(make), "t", "COPY")
    assert isinstance(failure, DataRefused) and not failure.retryable and "gold.t" in str(failure)


def test_lake_faults_storage_errors_and_bugs():
    fault = classify(LakeFault("t", "s3://b/k.parquet is not Parquet"), "t")
    assert isinstance(fault, SyncRefused) and "k.parquet" in str(fault)
    storage = classify(ConnectionResetError("reset by peer"), "t", "reading the lake")
    assert isinstance(storage, SyncTransient) and "lake storage" in str(storage)
    assert classify(KeyError("bug"), "t") is None  # a bug keeps its traceback
