"""Bad configuration fails early with the setting's name and never shows a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from platform_assets import settings
from resources.serving_db import ServingDatabase, ServingDbError, redact
from resources.storage import LakeConfigError, LakeStorage
from tests.conftest import _free_port
from tests.support.goldctl import PASSWORD, goldctl_isolated, unreachable_rds_url

PROJECT = Path(__file__).resolve().parent.parent
AWS_SECRET = "AwsSecretKey-DoNotPrint-42"


# ---- RDS_URL ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        unreachable_rds_url(),
        f"postgresql+psycopg://loader:{PASSWORD}@127.0.0.1:{_free_port()}/serving",
        f"postgresql://loader@127.0.0.1:{_free_port()}/serving?password={PASSWORD}",
        f"host=127.0.0.1 port={_free_port()} user=loader password={PASSWORD} dbname=serving",
    ],
    ids=["url", "sqlalchemy-url", "query-password", "keyword-conninfo"],
)
def test_unreachable_rds_names_the_setting_and_hides_the_password(url):
    db = ServingDatabase(url=url, connect_timeout_s=3)
    with pytest.raises(ServingDbError) as info:
        db.connect()
    message = str(info.value)
    assert "RDS_URL" in message
    assert "cannot connect to the serving database" in message
    assert "127.0.0.1" in message  # says where it tried
    assert PASSWORD not in message
    assert PASSWORD not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained libpq text
    assert PASSWORD not in db.display_url


def test_redact_hides_every_password_form():
    assert redact(f"postgresql://u:{PASSWORD}@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact(f"postgresql://u@h/d?sslmode=require&password={PASSWORD}") == (
        "postgresql://u@h/d?sslmode=require&password=***"
    )
    assert redact(f"host=h password='{PASSWORD} x' user=u") == "host=h password=*** user=u"
    assert redact("postgresql://u@h/d") == "postgresql://u@h/d"


def test_rds_url_from_the_environment_is_resolved_and_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("RDS_URL", unreachable_rds_url())
    monkeypatch.setenv("LAKE_URL", str(tmp_path / "lake"))
    with settings.open_resources() as res:
        serving = res["serving"]
        assert not serving.is_embedded
        with pytest.raises(ServingDbError, match="RDS_URL") as info:
            serving.connect()
    assert PASSWORD not in str(info.value)


def test_goldctl_status_with_unreachable_rds_exits_2_without_the_password(tmp_path):
    proc = goldctl_isolated(
        "status",
        env={"RDS_URL": unreachable_rds_url(), "LAKE_URL": str(tmp_path / "lake")},
        via_script=True,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "RDS_URL" in proc.stderr
    assert "cannot connect to the serving database" in proc.stderr
    assert "Traceback" not in output
    assert PASSWORD not in output


# ---- LAKE_URL -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://x/lake", "gs://bucket/lake", "s3:///no-bucket"])
def test_bad_lake_url_names_the_setting(url):
    with pytest.raises(LakeConfigError, match="LAKE_URL"):
        LakeStorage(url=url).check()


def test_missing_s3_bucket_names_lake_url_and_the_bucket(s3_endpoint):
    lake = LakeStorage(url="s3://no-such-bucket-4711/lake", s3_endpoint_url=s3_endpoint)
    with pytest.raises(LakeConfigError) as info:
        lake.list_keys("gold")
    message = str(info.value)
    assert "LAKE_URL" in message
    assert "no-such-bucket-4711" in message
    assert "does not exist" in message


def test_goldctl_with_missing_bucket_exits_2_naming_lake_url(s3_endpoint, pg_url):
    proc = goldctl_isolated(
        "status",
        env={
            "LAKE_URL": "s3://no-such-bucket-4712/lake",
            "S3_ENDPOINT_URL": s3_endpoint,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_ACCESS_KEY_ID": "testing",
            "RDS_URL": pg_url,
        },
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "LAKE_URL" in proc.stderr and "no-such-bucket-4712" in proc.stderr
    assert "Traceback" not in output
    assert AWS_SECRET not in output


def test_goldctl_with_bad_lake_scheme_exits_2(pg_url):
    proc = goldctl_isolated("status", env={"LAKE_URL": "ftp://example.org/lake", "RDS_URL": pg_url})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "LAKE_URL" in proc.stderr and "ftp://example.org/lake" in proc.stderr


# ---- SQL_ENGINE ---------------------------------------------------------------------------------


def test_unknown_sql_engine_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("SQL_ENGINE", "bogus")
    with pytest.raises(ValueError, match="SQL_ENGINE") as info:
        settings.sql_engine(LakeStorage(url=str(tmp_path / "lake")))
    assert "duckdb" in str(info.value) and "athena" in str(info.value)


def test_goldctl_with_unknown_sql_engine_exits_2(tmp_path):
    proc = goldctl_isolated(
        "status",
        env={"SQL_ENGINE": "bogus", "LAKE_URL": str(tmp_path / "lake"), "RDS_URL": "x"},
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "SQL_ENGINE" in proc.stderr and "bogus" in proc.stderr
    assert "Traceback" not in proc.stderr
