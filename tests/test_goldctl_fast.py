"""goldctl loads only what a command needs, and `--json` always prints JSON, errors included."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from resources.storage import LakeStorage
from tests.support.goldctl import PROJECT, goldctl, goldctl_env

HEAVY = ("dagster", "pyarrow.dataset", "pandas", "duckdb", "sqlglot")


def _modules_loaded_by(env: dict, *args: str) -> tuple[int, set[str]]:
    """(exit code, which HEAVY modules were imported) for `goldctl ARGS` run in a subprocess."""
    script = (
        "import sys, json\n"
        "from platform_assets.cli import main\n"
        "try:\n"
        f"    code = main({list(args)!r})\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    code, loaded = json.loads(done.stderr.strip().splitlines()[-1])
    return code, set(loaded)


def test_help_and_status_load_no_dagster_and_no_engine(serving, tmp_path):
    env = goldctl_env(LakeStorage(url=str(tmp_path / "lake")), serving)
    assert _modules_loaded_by(env, "--help") == (0, set())
    code, loaded = _modules_loaded_by(env, "status", "--json")
    assert code == 3  # really ran: the unbuilt platform is not in sync
    assert loaded == set()
    code, loaded = _modules_loaded_by(env, "sync", "no_such_table")
    assert code == 2 and "dagster" in loaded  # the control: sync does open Dagster's resources


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"LAKE_URL": "ftp://example.org/lake"}, "LAKE_URL"),
        ({"SQL_ENGINE": "bogus"}, "SQL_ENGINE"),
        ({"DUCKDB_THREADS": "0"}, "DUCKDB_THREADS"),
        ({"RDS_STORAGE_BUDGET_GB": "lots"}, "RDS_STORAGE_BUDGET_GB"),
    ],
    ids=["lake-url", "sql-engine", "duckdb-threads", "not-an-integer"],
)
def test_status_json_prints_json_on_a_setting_error(serving, tmp_path, env, setting):
    base = goldctl_env(LakeStorage(url=str(tmp_path / "lake")), serving)
    done = goldctl("status", "--json", env={**base, **env})
    assert done.returncode == 2, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["setting"] == setting
    assert setting in report["error"] and "\n" not in report["error"]
    assert done.stderr.strip() == f"goldctl: {report['error']}"


def test_status_json_prints_json_when_the_database_is_unreachable(tmp_path):
    from tests.support.goldctl import PASSWORD, unreachable_rds_url

    env = goldctl_env(
        LakeStorage(url=str(tmp_path / "lake")),
        type("S", (), {"url": unreachable_rds_url()})(),
    )
    done = goldctl("status", "--json", env=env)
    assert done.returncode == 2
    report = json.loads(done.stdout)
    assert report["setting"] == "RDS_URL"
    assert "cannot connect to the serving database" in report["error"]
    assert PASSWORD not in done.stdout + done.stderr


def test_status_without_json_keeps_stdout_empty_on_errors(serving, tmp_path):
    base = goldctl_env(LakeStorage(url=str(tmp_path / "lake")), serving)
    done = goldctl("status", env={**base, "SQL_ENGINE": "bogus"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("goldctl: ") and "SQL_ENGINE" in done.stderr
