"""`athena`: the Athena engine against moto's S3 and Athena on loopback (a fixture)."""

from __future__ import annotations

import uuid

import pytest
from moto.athena.models import athena_backends
from moto.core import DEFAULT_ACCOUNT_ID

from resources.sql_engine import AthenaEngine
from resources.storage import LakeStorage


@pytest.fixture
def athena(s3_endpoint):
    """(engine, lake, prefix, the SQL sent to Athena since)."""
    from tests.conftest import BUCKET  # conftest imports this module

    prefix = uuid.uuid4().hex[:8]
    lake = LakeStorage(url=f"s3://{BUCKET}/{prefix}", s3_endpoint_url=s3_endpoint)
    engine = AthenaEngine(
        lake=lake,
        region="us-east-1",
        endpoint_url=s3_endpoint,
        output_location=f"s3://{BUCKET}/athena-results/",
        database_prefix="prod_",
    )
    backend = athena_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    seen = set(backend.executions)

    def sent() -> list[str]:
        return [e.query for k, e in backend.executions.items() if k not in seen]

    return engine, lake, prefix, sent
