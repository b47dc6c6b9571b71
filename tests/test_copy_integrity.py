"""The copy is what the ledger says it is: table-atomic publishes, and damage by hand repaired.

- Atomicity: while every month of a partitioned copy is replaced by values whose total differs
  per lake version, a reader summing a column in one query only ever sees one version's total.
- Drift: a copy dropped, truncated or altered by hand is reported not in sync (with the reason),
  `lake_change_sensor` requests exactly one sync for it on a real instance, and a plain sync
  (no force) repairs it; an unchanged copy stays a no-op.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from platform_assets.keys import rds_key
from platform_assets.lake.tables import GoldLake
from platform_assets.specs import GOLD_BY_NAME
from platform_assets.status import table_status
from tests.conftest import materialize, platform_resources
from tests.support.copies import Reader, sync_spec
from tests.support.goldctl import wait_for
from tests.support.in_process import tick
from tests.support.lake_edits import current_table, rewrite_table

CARRIER = GOLD_BY_NAME["carrier_daily_performance"]
WEATHER = GOLD_BY_NAME["airport_daily_weather"]


def test_a_reader_never_sees_two_lake_versions_in_one_query(local_lake, serving):
    assert materialize(
        f"key:lake/gold/{CARRIER.name} or key:rds/gold/{CARRIER.name}",
        platform_resources(local_lake, serving),
    ).success
    original = current_table(local_lake, CARRIER)
    # version B: every row's flights + 1, so every month differs and the totals differ
    bumped = original.set_column(
        original.schema.get_field_index("flights"),
        "flights",
        pc.add(original["flights"], pa.scalar(1, original.schema.field("flights").type)),
    )
    totals = {pc.sum(original["flights"]).as_py(), pc.sum(bumped["flights"]).as_py()}
    assert len(totals) == 2

    reader = Reader(serving.conninfo(), CARRIER.name)
    reader.start()
    try:
        wait_for(lambda: len(reader.sums) > 10, what="the reader to start")
        for i in range(8):
            rewrite_table(local_lake, CARRIER, bumped if i % 2 == 0 else original)
            seen = len(reader.sums)
            result = sync_spec(local_lake, serving, CARRIER)
            assert len(result.partitions_reloaded) == 12
            wait_for(lambda s=seen: len(reader.sums) > s + 50, what="reads after a publish")
        wait_for(lambda: len(reader.sums) > 1000, what="a thousand reads")
    finally:
        reader.stop.set()
        reader.join(timeout=30)
    assert not reader.errors, reader.errors[:5]
    assert set(reader.sums) == totals, set(reader.sums) - totals  # both seen, nothing mixed


def _damage(serving, sql: str) -> None:
    with serving.connect(autocommit=True) as conn:
        conn.execute(sql)


DAMAGE = {
    "drop": "DROP TABLE gold.{t}",
    "truncate": "TRUNCATE gold.{t}",
    "truncate_one_month": "TRUNCATE gold.{t}__p201305",
    "alter": "ALTER TABLE gold.{t} ADD COLUMN note text",
    "drop_column": "ALTER TABLE gold.{t} DROP COLUMN cancelled",
    "recreate": "DROP TABLE gold.{t}; "
    "CREATE TABLE gold.{t} (flight_date date, carrier text) PARTITION BY RANGE (flight_date)",
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damage_by_hand_is_seen_requested_once_and_repaired(damage, built):
    instance, resources = built
    lake, serving = resources["lake"], resources["serving"]
    spec = CARRIER
    first = tick(instance, resources, cursor=None)
    assert first.run_requests == []
    with serving.connect(autocommit=True) as conn:
        count, total = conn.execute(
            f"SELECT count(*), sum(flights) FROM gold.{spec.name}"
        ).fetchone()

    _damage(serving, DAMAGE[damage].format(t=spec.name))

    with serving.connect(autocommit=True) as conn:
        status = table_status(spec, GoldLake(lake), conn)
    assert not status.in_sync and status.severity == "error"
    assert "by hand" in status.reason or "missing" in status.reason, status.reason

    result = tick(instance, resources, cursor=first.cursor)
    assert [r.asset_selection for r in result.run_requests] == [[rds_key(spec.name)]]
    again = tick(instance, resources, cursor=result.cursor)  # same damage: same run key
    assert [r.run_key for r in again.run_requests] == [result.run_requests[0].run_key]

    repaired = sync_spec(lake, serving, spec)  # a plain sync, no force
    assert repaired.action == "loaded" and repaired.repaired
    with serving.connect(autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*), sum(flights) FROM gold.{spec.name}").fetchone() == (
            count,
            total,
        )
        assert table_status(spec, GoldLake(lake), conn).in_sync
    assert sync_spec(lake, serving, spec).action == "unchanged"  # and then a no-op again
    assert tick(instance, resources, cursor=again.cursor).run_requests == []


def test_plain_table_truncated_by_hand_is_repaired(built):
    instance, resources = built
    lake, serving = resources["lake"], resources["serving"]
    with serving.connect(autocommit=True) as conn:
        count = conn.execute(f"SELECT count(*) FROM gold.{WEATHER.name}").fetchone()[0]
    _damage(serving, f"TRUNCATE gold.{WEATHER.name}")
    assert len(tick(instance, resources, cursor=None).run_requests) == 1
    assert sync_spec(lake, serving, WEATHER).action == "loaded"
    with serving.connect(autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM gold.{WEATHER.name}").fetchone()[0] == count


def test_a_copy_of_an_older_layout_is_rebuilt_once(local_lake, serving):
    """A plain table with a ledger row from before the ledger recorded relations (an upgrade):
    the first sync rebuilds it as a partitioned parent, the next one is a no-op."""
    resources = platform_resources(local_lake, serving)
    assert materialize(f"key:lake/gold/{WEATHER.name} or key:rds/gold/{WEATHER.name}", resources)
    with serving.connect(autocommit=True) as conn:
        count = conn.execute(f"SELECT count(*) FROM gold.{WEATHER.name}").fetchone()[0]
        conn.execute(f"CREATE TABLE gold.old_layout AS SELECT * FROM gold.{WEATHER.name}")
        conn.execute(f"DROP TABLE gold.{WEATHER.name}")
        conn.execute(f"ALTER TABLE gold.old_layout RENAME TO {WEATHER.name}")
        conn.execute(
            "UPDATE platform.sync_ledger SET relation_id = NULL, columns = '[]' "
            "WHERE table_name = %s",
            (WEATHER.name,),
        )
        assert not table_status(WEATHER, GoldLake(local_lake), conn).in_sync
    assert sync_spec(local_lake, serving, WEATHER).action == "loaded"
    with serving.connect(autocommit=True) as conn:
        kind = conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = %s::regclass", (f"gold.{WEATHER.name}",)
        ).fetchone()[0]
        assert kind == "p"
        assert conn.execute(f"SELECT count(*) FROM gold.{WEATHER.name}").fetchone()[0] == count
        assert table_status(WEATHER, GoldLake(local_lake), conn).in_sync
    assert sync_spec(local_lake, serving, WEATHER).action == "unchanged"
