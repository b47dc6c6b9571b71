"""The whole platform, materialized like `dagster asset materialize --select '*'` does."""

from __future__ import annotations

import pytest

from platform_assets.keys import LAKE_CHECKS, RDS_CHECKS
from platform_assets.lake.tables import GoldLake
from platform_assets.specs import GOLD_TABLES
from platform_assets.status import table_status
from tests.conftest import make_lake, materialize, platform_resources


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_everything_materializes_and_rds_is_in_sync(kind, tmp_path, serving, request):
    endpoint = request.getfixturevalue("s3_endpoint") if kind == "s3" else None
    lake = make_lake(kind, tmp_path, endpoint)
    result = materialize("*", platform_resources(lake, serving))
    assert result.success

    gold = GoldLake(lake)
    with serving.connect(autocommit=True) as conn:
        for spec in GOLD_TABLES:
            status = table_status(spec, gold, conn)
            assert status.in_sync, status
            assert status.lake_rows == status.rds_rows > 0
    checks = result.get_asset_check_evaluations()
    assert len(checks) == (len(LAKE_CHECKS) + len(RDS_CHECKS)) * len(GOLD_TABLES)
    assert all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
    if kind == "s3":
        assert lake.list_keys("gold")[0].key.startswith("gold/")
        assert lake.uri().startswith("s3://")
