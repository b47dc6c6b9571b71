"""Real services for tests: a throwaway embedded PostgreSQL and an S3 server on loopback."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import boto3
import dagster as dg
import psycopg
import pytest

from resources import embedded_pg
from resources.serving_db import ServingDatabase
from resources.source import SourceSettings
from resources.sql_engine import DuckDBEngine
from resources.storage import LakeStorage
from tests.support.real_assets import materialize, platform_resources

BUCKET = "test-lake"
GOLD = "key:lake/gold/* or key:rds/gold/*"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_url():
    """A real PostgreSQL for the whole session, deleted afterwards."""
    with embedded_pg.throwaway(Path(tempfile.mkdtemp(prefix="pgtest-")) / "pg") as url:
        yield url


@pytest.fixture
def serving(pg_url) -> ServingDatabase:
    """A fresh database per test on the session server."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield ServingDatabase(url=pg_url.replace("/postgres?", f"/{name}?"))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on loopback, with fake credentials for every client in this process."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def make_lake(kind: str, tmp_path: Path, s3_endpoint: str | None = None) -> LakeStorage:
    if kind == "s3":
        return LakeStorage(url=f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}", s3_endpoint_url=s3_endpoint)
    return LakeStorage(url=str(tmp_path / "lake"))


@pytest.fixture(scope="session")
def silver_lake_dir(tmp_path_factory) -> Path:
    """Bronze and Silver built once per session into a local lake; tests copy it."""
    root = tmp_path_factory.mktemp("silver")
    lake = LakeStorage(url=str(root / "lake"))
    result = materialize(
        "key:lake/bronze/* or key:lake/silver/*",
        {"lake": lake, "engine": DuckDBEngine(lake=lake), "source": SourceSettings()},
    )
    assert result.success
    return root / "lake"


@contextmanager
def gold_built(silver_lake_dir: Path, pg_url: str, root: Path):
    """Gold built (both layers) into a copy of the Silver lake and a fresh database, dropped after:
    (lake, serving)."""
    import shutil

    shutil.copytree(silver_lake_dir, root / "lake")
    lake = LakeStorage(url=str(root / "lake"))
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    serving = ServingDatabase(url=pg_url.replace("/postgres?", f"/{name}?"))
    try:
        result = materialize("key:lake/gold/* or key:rds/gold/*", platform_resources(lake, serving))
        assert result.success
        yield lake, serving
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def local_lake(silver_lake_dir, tmp_path) -> LakeStorage:
    """A local lake holding Bronze and Silver, private to the test."""
    import shutil

    target = tmp_path / "lake"
    shutil.copytree(silver_lake_dir, target)
    return LakeStorage(url=str(target))


@pytest.fixture
def built(local_lake, serving):
    """Gold built and synced by Dagster on a real (ephemeral) instance: (instance, resources)."""
    resources = platform_resources(local_lake, serving)
    with dg.instance_for_test() as instance:
        assert materialize(GOLD, resources, instance=instance).success
        yield instance, resources


# fixtures that live with their harness in tests/support/
from tests.support.athena import athena  # noqa: E402, F401
from tests.support.pg_server import own_server  # noqa: E402, F401
