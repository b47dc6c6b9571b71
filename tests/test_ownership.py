"""One owner per serving copy: two deployments (own lake, own name) on one PostgreSQL server.

The second deployment's sync of a copy the first owns is refused before anything is touched,
naming the owner, in goldctl, the run and its check; the first stays untouched and in sync. Two
deployments whose tables differ both sync theirs. `goldctl take-over` hands a copy over on
purpose. Real PostgreSQL, real lakes, goldctl as a subprocess.
"""

from __future__ import annotations

import json
import shutil

from platform_assets.specs import GOLD_TABLES
from resources.serving_db import ServingDatabase
from resources.storage import LakeStorage
from tests.conftest import GOLD, materialize, platform_resources
from tests.support.goldctl import goldctl, goldctl_env

TABLE = "airport_daily_weather"
OTHER = "carrier_daily_performance"


def deployment(name: str, silver_lake_dir, tmp_path, serving) -> tuple[dict, dict]:
    """(resources, goldctl env) of a deployment `name` with its own lake on the shared server."""
    shutil.copytree(silver_lake_dir, tmp_path / name / "lake")
    lake = LakeStorage(url=str(tmp_path / name / "lake"))
    db = ServingDatabase(url=serving.url, deployment=name)
    return platform_resources(lake, db), goldctl_env(lake, db, GOLD_DEPLOYMENT=name)


def status(env) -> tuple[int, dict]:
    out = goldctl("status", "--json", env=env)
    return out.returncode, {t["table"]: t for t in json.loads(out.stdout)["tables"]}


def copy_of(serving, table: str) -> tuple:
    with serving.connect(autocommit=True) as conn:
        return conn.execute(
            "SELECT lake_version, loaded_at, row_count FROM platform.sync_ledger "
            "WHERE table_name = %s AND partition_key = ''",
            (table,),
        ).fetchone()


def test_another_deployments_sync_is_refused_naming_the_owner_until_handed_over(
    silver_lake_dir, tmp_path, serving
):
    alpha, alpha_env = deployment("alpha", silver_lake_dir, tmp_path, serving)
    beta, beta_env = deployment("beta", silver_lake_dir, tmp_path, serving)
    assert materialize(GOLD, alpha).success
    assert status(alpha_env)[0] == 0
    held = copy_of(serving, TABLE)
    assert materialize(f"key:lake/gold/{TABLE}", beta).success  # beta's own lake version

    # goldctl: refused, naming the owner and the way to hand it over
    refused = goldctl("sync", TABLE, env=beta_env)
    assert refused.returncode != 0
    assert "deployment 'alpha'" in refused.stderr and f"take-over {TABLE}" in refused.stderr
    # the run: failed with the same reason, and its in_sync check says so
    run = materialize(f"key:rds/gold/{TABLE}", beta, raise_on_error=False)
    assert not run.success
    [check] = [c for c in run.get_asset_check_evaluations() if c.check_name == "in_sync_with_lake"]
    assert not check.passed and "deployment 'alpha'" in check.metadata["refused"].value
    # the first deployment untouched: same copy, no refusal written over its row, in sync
    assert copy_of(serving, TABLE) == held
    with serving.connect(autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM platform.sync_refusals").fetchone()[0] == 0
    assert status(alpha_env)[0] == 0
    code, beta_view = status(beta_env)
    assert code == 3 and beta_view[TABLE]["owner"] == "alpha"
    assert "belongs to deployment 'alpha'" in beta_view[TABLE]["reason"]

    # a hand-over must name the current owner
    wrong = goldctl("take-over", TABLE, "--from", "gamma", env=beta_env)
    assert wrong.returncode == 2 and "not 'gamma'" in wrong.stderr
    taken = goldctl("take-over", TABLE, "--from", "alpha", env=beta_env)
    assert taken.returncode == 0, taken.stderr
    synced = goldctl("sync", TABLE, env=beta_env)
    assert synced.returncode == 0, synced.stderr
    code, beta_view = status(beta_env)
    assert beta_view[TABLE]["in_sync"] and beta_view[TABLE]["owner"] == "beta"
    assert copy_of(serving, TABLE)[0] == beta_view[TABLE]["lake_version"] != held[0]
    # ...and now alpha is the one refused, its other copies untouched
    code, alpha_view = status(alpha_env)
    assert code == 3 and not alpha_view[TABLE]["in_sync"]
    assert "belongs to deployment 'beta'" in alpha_view[TABLE]["reason"]
    assert all(alpha_view[s.name]["in_sync"] for s in GOLD_TABLES if s.name != TABLE)
    assert goldctl("sync", TABLE, env=alpha_env).returncode != 0
    assert copy_of(serving, TABLE)[0] == beta_view[TABLE]["lake_version"]


def test_two_deployments_with_different_tables_share_a_server(silver_lake_dir, tmp_path, serving):
    alpha, alpha_env = deployment("alpha", silver_lake_dir, tmp_path, serving)
    beta, beta_env = deployment("beta", silver_lake_dir, tmp_path, serving)
    assert materialize(f"key:lake/gold/{TABLE} or key:rds/gold/{TABLE}", alpha).success
    assert materialize(f"key:lake/gold/{OTHER} or key:rds/gold/{OTHER}", beta).success

    # each one's own table in sync, the other's reported as another deployment's, not an error
    for env, mine, theirs, owner in (
        (alpha_env, TABLE, OTHER, "beta"),
        (beta_env, OTHER, TABLE, "alpha"),
    ):
        _, view = status(env)
        assert view[mine]["in_sync"] and view[mine]["severity"] == "ok", view[mine]
        assert view[theirs]["severity"] == "foreign" and view[theirs]["owner"] == owner
    # a second round of syncs on both sides changes nothing: no back and forth
    before = (copy_of(serving, TABLE), copy_of(serving, OTHER))
    assert materialize(f"key:rds/gold/{TABLE}", alpha).success
    assert materialize(f"key:rds/gold/{OTHER}", beta).success
    assert (copy_of(serving, TABLE), copy_of(serving, OTHER)) == before
