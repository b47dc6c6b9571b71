"""Shared setup of the dashboard tests: Gold built and synced once per test session.

`gold_database` does what the `serving` + `local_lake` fixtures and
`materialize("key:lake/gold/* or key:rds/gold/*", ...)` do in tests/test_end_to_end.py, but once
per session for all dashboard test modules (each page test only reads): a fresh database on the
session's PostgreSQL (`pg_url`), a private copy of the session's Silver lake, Gold built by the
real assets into it and synced into RDS by the real sync protocol.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psycopg
from streamlit.testing.v1 import AppTest

from platform_assets.lake.tables import GoldLake
from resources.serving_db import ServingDatabase
from resources.storage import LakeStorage
from tests.conftest import materialize, platform_resources

GOLD_SELECTION = "key:lake/gold/* or key:rds/gold/*"
_BUILT: dict[str, tuple[ServingDatabase, LakeStorage]] = {}


def gold_database(
    pg_url: str, silver_lake_dir: Path, root: Path
) -> tuple[ServingDatabase, LakeStorage]:
    """(serving DB with gold.* and the ledger, its lake), built on first use in the session."""
    if pg_url not in _BUILT:
        name = f"dash_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        serving = ServingDatabase(url=pg_url.replace("/postgres?", f"/{name}?"))
        target = root / f"lake-{name}"
        shutil.copytree(silver_lake_dir, target)
        lake = LakeStorage(url=str(target))
        result = materialize(GOLD_SELECTION, platform_resources(lake, serving))
        assert result.success
        _BUILT[pg_url] = (serving, lake)
    return _BUILT[pg_url]


def assert_badge(at: AppTest, serving, lake, table: str, colour: str = "GREEN") -> None:
    version = GoldLake(lake).current_state(table).state_id
    ledger_version = sql(
        serving,
        "SELECT lake_version FROM platform.sync_ledger WHERE table_name = %s "
        "AND partition_key = ''",
        (table,),
    )[0][0]
    assert ledger_version == version
    kind = {"GREEN": at.success, "AMBER": at.warning, "RED": at.error}[colour]
    badge = [e.value for e in kind if f"gold.{table}" in e.value]
    assert badge, texts(at)
    assert badge[0].startswith(f"{colour} · gold.{table} shows lake version {version}")
    assert version in badge[0]
    assert any(c.startswith("View cached at ") for c in (e.value for e in at.caption))


def sql(serving, query: str, params=()):
    with serving.connect(autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def texts(at: AppTest) -> list[str]:
    out = []
    for kind in ("error", "warning", "success", "info", "caption", "markdown", "header"):
        out += [str(e.value) for e in getattr(at, kind)]
    return out
