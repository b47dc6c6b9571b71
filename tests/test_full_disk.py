"""A full disk costs a refusal, never the server (serving/disk.py).

The serving PostgreSQL runs with its data folder on a small tmpfs (mounted by the test: root
and mount permission needed, else it skips saying so). The Gold copies are built, the lake
moves on, and the volume is filled until 4 MiB are left: a WAL segment alone is 16 MiB, so the
staging of any sync would make PostgreSQL PANIC. `goldctl sync` refuses in one line with the
numbers, the server stays up and serves the old copy, `goldctl status` says why and
`fits_storage_budget`'s report does not fit; once space is freed the next sync heals. Where no
data folder is visible (RDS), `RDS_STORAGE_GB` bounds the same way; a fractional
`RDS_STORAGE_BUDGET_GB` is a budget, not a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from platform_assets.lake.tables import GoldLake
from platform_assets.serving.errors import SyncRefused
from platform_assets.serving.protocol import sync_table
from platform_assets.specs import GOLD_BY_NAME
from resources import embedded_pg
from resources.serving_db import ServingDatabase
from resources.sql_engine import DuckDBEngine
from tests.conftest import materialize, platform_resources
from tests.support.copies import copy_status, count_and_sum, stage_tables
from tests.support.goldctl import goldctl, goldctl_env
from tests.support.lake_edits import add_outside_file

WEATHER = GOLD_BY_NAME["airport_daily_weather"]
MIB = 1024**2
LEFT = 4 * MIB


@pytest.fixture
def small_volume(tmp_path):
    mount = tmp_path / "volume"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256m,mode=1777", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(
            "the full-disk test mounts a 256 MiB tmpfs as the data volume and may not here "
            f"(needs root and mount permission): {done.stderr.strip() or done.returncode}"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def server_on_volume(small_volume):
    server = embedded_pg.start(small_volume / "pg", keep=False)
    try:
        yield small_volume, server.get_postmaster_info().get_uri(database="postgres")
    finally:
        server.cleanup()


def _free(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(volume, leave: int):
    """A file taking all but `leave` bytes of the volume (real pages: tmpfs keeps holes free)."""
    filler = volume / "filler"
    chunk = b"\xff" * MIB
    with filler.open("wb") as f:
        while _free(volume) - len(chunk) > leave:
            f.write(chunk)
            f.flush()
        rest = _free(volume) - leave
        if rest > 0:
            f.write(b"\xff" * rest)
    return filler


def test_a_sync_that_would_fill_the_volume_is_refused_and_the_server_stays_up(
    server_on_volume, local_lake
):
    volume, url = server_on_volume
    serving = ServingDatabase(url=url)
    assert materialize("key:lake/gold/* or key:rds/gold/*", platform_resources(local_lake, serving))
    added, _ = add_outside_file(local_lake, WEATHER.name)
    served = count_and_sum(serving, WEATHER)
    env = goldctl_env(local_lake, serving)

    filler = _fill(volume, LEFT)
    assert _free(volume) <= LEFT + MIB
    done = goldctl("sync", WEATHER.name, env=env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    message = done.stderr
    assert f"refusing to sync gold.{WEATHER.name}: staging 1 unit(s) needs" in message, message
    assert "MiB left (the file system of" in message and "RDS keeps serving" in message

    # the server is up and serves the old copy; every surface has the reason
    assert count_and_sum(serving, WEATHER) == served
    assert stage_tables(serving) == []
    st = copy_status(local_lake, serving, WEATHER)
    assert not st.in_sync and "staging 1 unit(s) needs" in st.reason, st
    done = goldctl("status", "--json", env=env)
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
    storage = json.loads(done.stdout)["storage"]
    assert not storage["fits"] and storage["volume_free_bytes"] <= LEFT + MIB, storage
    assert storage["syncs_need_bytes"] > storage["volume_free_bytes"]

    filler.unlink()  # space freed: the next plain sync heals
    done = goldctl("sync", WEATHER.name, env=env)
    assert done.returncode == 0, done.stderr
    assert count_and_sum(serving, WEATHER)[0] == served[0] + added
    assert copy_status(local_lake, serving, WEATHER).in_sync
    done = goldctl("status", "--json", env=env)
    assert json.loads(done.stdout)["storage"]["fits"], done.stdout  # the false alarm's side


def test_rds_storage_gb_bounds_a_sync_where_no_data_folder_is_visible(local_lake, serving):
    assert materialize(
        f"key:lake/gold/{WEATHER.name} or key:rds/gold/{WEATHER.name}",
        platform_resources(local_lake, serving),
    )
    served = count_and_sum(serving, WEATHER)
    engine = DuckDBEngine(lake=local_lake)
    tiny = ServingDatabase(url=serving.url, storage_size="0.001")  # 1 MiB: less than in use
    with pytest.raises(SyncRefused, match=r"has 0 B left \(RDS_STORAGE_GB=0.001 less"):
        sync_table(WEATHER, GoldLake(local_lake), engine, tiny, force=True, log=print)
    assert count_and_sum(serving, WEATHER) == served
    roomy = ServingDatabase(url=serving.url, storage_size="2048")
    result = sync_table(WEATHER, GoldLake(local_lake), engine, roomy, force=True, log=print)
    assert result.action == "loaded"


def test_a_fractional_storage_budget_is_a_budget_not_a_traceback(local_lake, serving):
    assert materialize(
        f"key:lake/gold/{WEATHER.name} or key:rds/gold/{WEATHER.name}",
        platform_resources(local_lake, serving),
    )
    env = goldctl_env(local_lake, serving, RDS_STORAGE_BUDGET_GB="0.2")
    done = goldctl("status", "--json", env=env)
    assert "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stdout)["storage"]["budget_bytes"] == int(0.2 * 1024**3)
    bad = goldctl("status", env={**env, "RDS_STORAGE_BUDGET_GB": "lots"})
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "RDS_STORAGE_BUDGET_GB must be a number of GB above 0" in bad.stderr, bad.stderr
