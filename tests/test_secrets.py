"""No secret anywhere: a password-bearing RDS_URL through a full `dagster dev` build and a run
that fails because the database is gone. The password must appear nowhere: not in the instance's
storage (runs, event log, check results), compute logs, GraphQL answers or the processes'
output.
"""

from __future__ import annotations

import json
from pathlib import Path

from platform_assets.specs import GOLD_TABLES
from resources.serving_db import ServingDatabase
from tests.support.dagster_dev import DagsterDev, dev_env
from tests.support.pg_server import PASSWORD, _pg_ctl

EVENTS = """query ($id: ID!) { logsForRun(runId: $id) { __typename
    ... on EventConnection { events { __typename
      ... on MessageEvent { message }
      ... on ErrorEvent { error { message stack causes { message stack } } } } } } }"""


def _files_holding(folder: Path, secret: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret in p.read_bytes()]


def test_a_password_in_rds_url_appears_nowhere(own_server, local_lake, tmp_path):  # noqa: F811
    pgdata, _socket_dir, url = own_server
    assert PASSWORD in url and PASSWORD in ServingDatabase(url=url).conninfo()
    home = tmp_path / "dagster_home"
    env = dev_env(home, local_lake.url, url, "")
    env.pop("ALERT_WEBHOOK_URL")
    dev = DagsterDev(env, tmp_path / "dagster_dev.log").start()
    try:
        dev.wait_ready(timeout=180)
        keys = [[layer, "gold", s.name] for s in GOLD_TABLES for layer in ("lake", "rds")]
        built = dev.launch(keys)
        assert dev.wait_run(built, timeout=300) == "SUCCESS", dev.log_tail()

        _pg_ctl(pgdata, "-w", "-m", "fast", "stop")  # the database goes away
        failed = dev.launch([["rds", "gold", GOLD_TABLES[0].name]])
        assert dev.wait_run(failed, timeout=300) == "FAILURE", dev.log_tail()
        answers = [json.dumps(dev.graphql(EVENTS, {"id": run})) for run in (built, failed)]
    finally:
        dev.stop()

    failure = answers[1]
    assert "RDS_URL" in failure or "serving database" in failure  # it did fail on the database
    assert all(PASSWORD not in a for a in answers)
    assert _files_holding(home, PASSWORD.encode()) == []  # runs, event log, checks, compute logs
    assert PASSWORD not in (tmp_path / "dagster_dev.log").read_text(errors="replace")
