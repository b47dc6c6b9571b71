"""A lake that cannot be used is one line naming LAKE_URL and the cause, raised when the lake
resource starts: in goldctl, and in a run before any step works. Real servers on loopback: moto
S3 (plain, and with authentication enforced), a closed port, a port that never answers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from resources.storage import LakeConfigError, LakeStorage, s3_cause
from tests.conftest import BUCKET, _free_port, materialize, platform_resources
from tests.support.goldctl import goldctl, goldctl_env


@pytest.fixture(scope="module")
def authenticating_s3():
    """moto's S3 server in its own process, checking credentials (unknown keys are denied)."""
    port = _free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers (a hung endpoint)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def _closed_endpoint() -> str:
    return f"http://127.0.0.1:{_free_port()}"


def _error(lake: LakeStorage) -> LakeConfigError:
    with pytest.raises(LakeConfigError) as info, lake.process_config_and_initialize_cm():
        pass
    return info.value


def _assert_one_line(error: LakeConfigError, *words: str) -> None:
    message = str(error)
    assert "\n" not in message and message.startswith("LAKE_URL: "), message
    assert error.setting == "LAKE_URL"
    for word in words:
        assert word in message, message
    assert "OSError" not in message


def test_missing_bucket(s3_endpoint):
    error = _error(LakeStorage(url="s3://no-such-bucket-31/lake", s3_endpoint_url=s3_endpoint))
    _assert_one_line(error, "no-such-bucket-31", "does not exist", s3_endpoint, "S3_ENDPOINT_URL")
    assert not error.allow_retries


def test_connection_refused():
    endpoint = _closed_endpoint()
    error = _error(LakeStorage(url=f"s3://{BUCKET}/lake", s3_endpoint_url=endpoint))
    _assert_one_line(error, "connection refused", endpoint)
    assert error.allow_retries  # the endpoint may come back


def test_unknown_host():
    endpoint = "http://no-such-host.invalid:9000"
    error = _error(LakeStorage(url=f"s3://{BUCKET}/lake", s3_endpoint_url=endpoint))
    _assert_one_line(error, "DNS lookup failed", endpoint)


def test_endpoint_that_never_answers_times_out(silent_port):
    endpoint = f"http://127.0.0.1:{silent_port}"
    error = _error(LakeStorage(url=f"s3://{BUCKET}/lake", s3_endpoint_url=endpoint))
    _assert_one_line(error, "timed out", endpoint)


def test_access_denied(authenticating_s3, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-known-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-its-secret")
    error = _error(LakeStorage(url=f"s3://{BUCKET}/lake", s3_endpoint_url=authenticating_s3))
    _assert_one_line(error, "access denied")
    assert "not-its-secret" not in str(error)
    assert not error.allow_retries


def test_wrong_region_as_aws_reports_it():
    """AWS answers a HeadBucket in the wrong region with 301 (moto does not check regions)."""
    message = (
        "When getting information for bucket 'b': AWS Error UNKNOWN (HTTP status 301) during "
        "HeadBucket operation: No response body."
    )
    assert s3_cause(message) == (
        "wrong region (the bucket is in another region than AWS_REGION)",
        False,
    )
    assert s3_cause("AWS Error NETWORK_CONNECTION during HeadBucket: curlCode: 7, x")[0] == (
        "connection refused"
    )


def test_goldctl_status_json_names_the_cause(serving):
    endpoint = _closed_endpoint()
    lake = LakeStorage(url=f"s3://{BUCKET}/lake", s3_endpoint_url=endpoint)
    env = goldctl_env(lake, serving, S3_ENDPOINT_URL=endpoint)
    done = goldctl("status", "--json", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["setting"] == "LAKE_URL" and "connection refused" in report["error"]
    assert "Traceback" not in done.stderr


def test_a_run_fails_before_any_step_naming_the_cause(serving):
    endpoint = _closed_endpoint()
    lake = LakeStorage(url=f"s3://{BUCKET}/lake", s3_endpoint_url=endpoint)
    result = materialize("*", platform_resources(lake, serving), raise_on_error=False)
    assert not result.success
    types = [e.event_type_value for e in result.all_events]
    assert "STEP_START" not in types  # no step began any work
    [init_failure] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    first_line = init_failure.event_specific_data.error.message.splitlines()[0]
    assert "LAKE_URL: cannot use bucket" in first_line and "connection refused" in first_line


def test_the_control_a_reachable_lake_starts(s3_endpoint):
    lake = LakeStorage(url=f"s3://{BUCKET}/lake-ok", s3_endpoint_url=s3_endpoint)
    with lake.process_config_and_initialize_cm() as started:
        assert started.list_keys("gold") == []
