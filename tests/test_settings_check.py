"""Every engine, lake, database and alert setting is checked before work starts: one line that
names the setting and what to do, no trace, no secret; in a run, the failing step says it."""

from __future__ import annotations

import dagster as dg
import pytest

from platform_assets import retry_rule
from resources.serving_db import ServingDatabase
from resources.settings_check import SettingError
from resources.sql_engine import AthenaEngine, DuckDBEngine
from tests.conftest import materialize
from tests.support.goldctl import PASSWORD, goldctl_isolated, unreachable_rds_url
from tests.support.retries import retry_at_once

WEBHOOK_SECRET = "T0SECRET/B0SECRET/xoxb-do-not-leak"

BAD_SETTINGS = {
    "athena-without-region-or-output": (
        {"SQL_ENGINE": "athena", "AWS_REGION": "", "AWS_DEFAULT_REGION": ""},
        ["ATHENA_REGION", "AWS_REGION", "ATHENA_OUTPUT_LOCATION"],
    ),
    "athena-output-not-s3": (
        {"SQL_ENGINE": "athena", "AWS_REGION": "eu-west-1", "ATHENA_OUTPUT_LOCATION": "/tmp/x"},
        ["ATHENA_OUTPUT_LOCATION", "s3://"],
    ),
    "athena-database-prefix-not-a-name": (
        {
            "SQL_ENGINE": "athena",
            "AWS_REGION": "eu-west-1",
            "ATHENA_OUTPUT_LOCATION": "s3://bucket/results/",
            "ATHENA_DATABASE_PREFIX": "prod-",
        },
        ["ATHENA_DATABASE_PREFIX", "'prod-'"],
    ),
    "rds-url-not-postgres": (
        {"RDS_URL": f"mysql://loader:{PASSWORD}@db:3306/serving"},
        ["RDS_URL", "postgresql://"],
    ),
    "rds-url-malformed": ({"RDS_URL": f"host=db password={PASSWORD} port"}, ["RDS_URL"]),
    "webhook-not-a-url": (
        {"ALERT_WEBHOOK_URL": f"hooks.slack.com/services/{WEBHOOK_SECRET}"},
        ["ALERT_WEBHOOK_URL", "https://"],
    ),
    "s3-endpoint-not-a-url": ({"S3_ENDPOINT_URL": "localhost:9000"}, ["S3_ENDPOINT_URL"]),
    "duckdb-threads": ({"DUCKDB_THREADS": "0"}, ["DUCKDB_THREADS", "at least 1"]),
}


@pytest.mark.parametrize("name", BAD_SETTINGS)
def test_goldctl_names_the_bad_setting_in_one_line(name, tmp_path):
    env, expected = BAD_SETTINGS[name]
    env = {"LAKE_URL": str(tmp_path / "lake"), "RDS_URL": unreachable_rds_url(), **env}
    proc = goldctl_isolated("status", env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("goldctl: ")
    for word in expected:
        assert word in line, line
    assert "cannot connect" not in line  # found before any connection was tried
    assert "Traceback" not in output
    assert PASSWORD not in output and WEBHOOK_SECRET not in output


def test_goldctl_stop_db_with_a_malformed_rds_url_says_so_in_one_line():
    proc = goldctl_isolated("stop-db", env={"RDS_URL": f"mysql://loader:{PASSWORD}@db/serving"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert "RDS_URL" in line and PASSWORD not in line and "Traceback" not in proc.stderr


def _step_failures(result) -> list:
    return [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]


def test_a_run_with_a_bad_engine_setting_fails_its_step_with_that_line(local_lake):
    engine = AthenaEngine(lake=local_lake, region=None, output_location=None)
    with pytest.raises(SettingError) as setup:
        engine.require_settings()
    result = materialize(
        "key:lake/gold/airport_daily_weather",
        {"lake": local_lake, "engine": engine},
        raise_on_error=False,
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    [failure] = _step_failures(result)
    description = failure.step_failure_data.user_failure_data.description
    assert description == str(setup.value)
    assert len(description.splitlines()) == 1
    assert "ATHENA_REGION" in description and "ATHENA_OUTPUT_LOCATION" in description


def test_a_run_with_an_unreachable_rds_fails_its_step_with_one_line(local_lake, monkeypatch):
    retry_at_once(monkeypatch)  # nothing listens there on any attempt
    serving = ServingDatabase(url=unreachable_rds_url(), connect_timeout_s=3)
    result = materialize(
        "key:lake/gold/airport_daily_weather or key:rds/gold/airport_daily_weather",
        {"lake": local_lake, "engine": DuckDBEngine(lake=local_lake), "serving": serving},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = _step_failures(result)
    assert failure.step_key.startswith("rds_gold_")
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == retry_rule.OP_RETRIES  # transient: retried, then failed
    description = failure.step_failure_data.user_failure_data.description
    assert len(description.splitlines()) == 1
    assert "RDS_URL" in description and "cannot connect to the serving database" in description
    everything = "\n".join(repr(e) for e in result.all_events)
    assert PASSWORD not in everything


def test_outside_a_run_settings_are_checked_when_the_resource_initializes(local_lake):
    engine = DuckDBEngine(lake=local_lake, threads=0)
    with (
        pytest.raises(SettingError, match="DUCKDB_THREADS") as info,
        engine.process_config_and_initialize_cm(),
    ):
        pass
    assert isinstance(info.value, dg.Failure) and not info.value.allow_retries
