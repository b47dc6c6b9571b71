"""Month-partitioned RDS copies: a change to one lake month reloads that month only."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from platform_assets.backfills import reload_months_job_name, reload_months_jobs
from platform_assets.definitions import ASSETS
from platform_assets.gold_assets.months import months_partitions
from platform_assets.lake.tables import GoldLake
from platform_assets.serving import ledger
from platform_assets.serving.errors import SyncUsageError
from platform_assets.serving.protocol import sync_table
from platform_assets.specs import GOLD_BY_NAME
from platform_assets.status import table_status
from resources.sql_engine import DuckDBEngine
from tests.conftest import materialize, platform_resources

SPEC = GOLD_BY_NAME["carrier_daily_performance"]


@pytest.fixture
def synced(local_lake, serving):
    selection = f"key:lake/gold/{SPEC.name} or key:rds/gold/{SPEC.name}"
    assert materialize(selection, platform_resources(local_lake, serving)).success
    return local_lake, serving


def _partition_rows(serving):
    with serving.connect(autocommit=True) as conn:
        return ledger.read_partitions(conn, SPEC.name)


def _add_rows_to_month(lake, month: int, rows: int = 4) -> None:
    """Add a file by hand to the current version folder, with new keys in one month only."""
    state = GoldLake(lake).current_state(SPEC.name)
    with lake.filesystem.open_input_file(lake.path(state.parquet_keys[0])) as f:
        table = pq.read_table(f)
    table = table.filter(pc.equal(pc.month(table["flight_date"]), month)).slice(0, rows)
    carriers = pa.array([f"X{i}" for i in range(len(table))])
    table = table.set_column(table.schema.get_field_index("carrier"), "carrier", carriers)
    with lake.filesystem.open_output_stream(
        lake.path(f"{state.manifest.location}/added-by-hand.parquet")
    ) as out:
        pq.write_table(table, out)


def test_rds_copy_is_partitioned_by_month(synced):
    _, serving = synced
    with serving.connect(autocommit=True) as conn:
        children = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'gold.carrier_daily_performance'"
            "::regclass"
        ).fetchone()[0]
    assert children == 12
    assert sorted(_partition_rows(serving)) == [f"2013-{m:02d}" for m in range(1, 13)]


def test_changing_one_month_resyncs_that_partition_only(synced):
    lake, serving = synced
    before = _partition_rows(serving)
    _add_rows_to_month(lake, month=3)
    with serving.connect(autocommit=True) as conn:
        assert not table_status(SPEC, GoldLake(lake), conn).in_sync

    result = sync_table(SPEC, GoldLake(lake), DuckDBEngine(lake=lake), serving, log=lambda _: None)

    assert result.partitions_reloaded == ["2013-03"]
    after = _partition_rows(serving)
    assert after["2013-03"].row_count == before["2013-03"].row_count + 4
    assert after["2013-03"].loaded_at > before["2013-03"].loaded_at
    for month, row in before.items():
        if month != "2013-03":
            assert after[month].loaded_at == row.loaded_at, month
            assert after[month].lake_version == row.lake_version, month
    with serving.connect(autocommit=True) as conn:
        status = table_status(SPEC, GoldLake(lake), conn)
    assert status.in_sync and status.rds_rows == status.lake_rows


def test_rebuilt_lake_with_same_content_reloads_no_month(synced):
    lake, serving = synced
    before = _partition_rows(serving)
    version = GoldLake(lake).current_state(SPEC.name).version
    selection = f"key:lake/gold/{SPEC.name} or key:rds/gold/{SPEC.name}"
    result = materialize(selection, platform_resources(lake, serving))
    assert result.success
    meta = result.asset_materializations_for_node(f"rds_gold_{SPEC.name}")[0].metadata
    assert GoldLake(lake).current_state(SPEC.name).version == version  # no new version
    assert meta["action"].value == "unchanged"
    after = _partition_rows(serving)
    assert {m: r.loaded_at for m, r in after.items()} == {m: r.loaded_at for m, r in before.items()}


def test_months_can_be_reloaded_on_request(synced):
    lake, serving = synced
    result = sync_table(
        SPEC, GoldLake(lake), DuckDBEngine(lake=lake), serving, months=["2013-07"], log=print
    )
    assert result.partitions_reloaded == ["2013-07"]
    with pytest.raises(SyncUsageError, match="no lake data for month"):
        sync_table(SPEC, GoldLake(lake), DuckDBEngine(lake=lake), serving, months=["1999-01"])


def test_launchpad_run_config_reloads_a_month_range(synced):
    """What a user gives in the UI's launchpad to backfill months of the RDS copy."""
    lake, serving = synced
    before = _partition_rows(serving)
    months = ["2013-04", "2013-05"]
    result = materialize(
        f"key:rds/gold/{SPEC.name}",
        platform_resources(lake, serving),
        run_config={"ops": {f"rds_gold_{SPEC.name}": {"config": {"months": months}}}},
    )
    assert result.success
    meta = result.asset_materializations_for_node(f"rds_gold_{SPEC.name}")[0].metadata
    assert meta["partitions_reloaded"].value == 2
    after = _partition_rows(serving)
    for month, row in before.items():
        changed = after[month].loaded_at != row.loaded_at
        assert changed == (month in months), month


def test_months_backfill_job_reloads_one_month_per_partition(local_lake, serving):
    """What the UI's Partitions tab -> Launch backfill runs: one run per chosen month."""
    resources = platform_resources(local_lake, serving)
    selection = f"key:lake/gold/{SPEC.name} or key:rds/gold/{SPEC.name}"
    with dg.instance_for_test() as instance:
        assert materialize(selection, resources, instance=instance).success
        partitions = months_partitions(SPEC).name
        months = [f"2013-{m:02d}" for m in range(1, 13)]
        assert instance.get_dynamic_partitions(partitions) == months

        before = _partition_rows(serving)
        job = dg.Definitions(
            assets=ASSETS, jobs=reload_months_jobs, resources=resources
        ).resolve_job_def(reload_months_job_name(SPEC.name))
        for month in ("2013-04", "2013-05"):
            result = job.execute_in_process(instance=instance, partition_key=month)
            assert result.success
            [event] = result.asset_materializations_for_node(f"rds_gold_{SPEC.name}")
            assert event.metadata["months_reloaded"].value == month
        after = _partition_rows(serving)
        for month, row in before.items():
            assert (after[month].loaded_at != row.loaded_at) == (month in ("2013-04", "2013-05"))
        with serving.connect(autocommit=True) as conn:
            assert table_status(SPEC, GoldLake(local_lake), conn).in_sync
