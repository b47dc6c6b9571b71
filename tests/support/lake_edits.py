"""Changes to the lake made by hand, as an analyst or another tool would make them."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from platform_assets.lake.tables import GoldLake, new_version_id, version_prefix
from resources.storage import LakeStorage, listing_token

TABLE = "airport_daily_weather"  # unpartitioned; primary key (flight_date, origin)


def add_outside_file(lake, table: str = TABLE, rows: int = 5) -> tuple[int, str]:
    """One Parquet file written by hand into `table`'s current version folder, with new keys.

    The rows copy existing ones with a made-up value in the first text column of the primary
    key, so the key stays unique. Returns (rows added, the file's lake key).
    """
    from platform_assets.lake.tables import GoldLake
    from platform_assets.specs import GOLD_BY_NAME

    state = GoldLake(lake).current_state(table)
    if state is None:
        raise RuntimeError(f"gold.{table} has no current version")
    with lake.filesystem.open_input_file(lake.path(state.parquet_keys[0])) as f:
        data = pq.read_table(f).slice(0, rows)
    column = next(
        c for c in GOLD_BY_NAME[table].primary_key if pa.types.is_string(data.schema.field(c).type)
    )
    tag = uuid.uuid4().hex[:6]
    values = pa.array([f"Z{tag}{i}" for i in range(len(data))], data.schema.field(column).type)
    data = data.set_column(data.schema.get_field_index(column), column, values)
    key = f"{state.manifest.location}/part-outside-{tag}.parquet"
    # written under a name readers skip, then renamed: a listing never sees half a file
    with lake.filesystem.open_output_stream(lake.path(f"{key}.tmp")) as out:
        pq.write_table(data, out)
    lake.filesystem.move(lake.path(f"{key}.tmp"), lake.path(key))
    return len(data), key


def table_in_sync(lake, rds_url: str, table: str):
    """The status `goldctl status` prints for `table` (same function, in process)."""
    import psycopg

    from platform_assets.lake.tables import GoldLake
    from platform_assets.specs import GOLD_BY_NAME
    from platform_assets.status import table_status

    with psycopg.connect(rds_url, autocommit=True) as conn:
        return table_status(GOLD_BY_NAME[table], GoldLake(lake), conn)


def new_build(lake, table: str = TABLE) -> str:
    """A new lake version of `table`, published as a build publishes one (its own version
    folder, then the manifest), not synced: the current files copied under a new version id.
    (A real rebuild of unchanged inputs keeps the version: builds are content-addressed.)"""
    gold = GoldLake(lake)
    current = gold.current_state(table)
    version = new_version_id(f"test-{uuid.uuid4().hex}")
    location = version_prefix(table, version)
    for key in current.parquet_keys:
        lake.write_bytes(f"{location}/{key.rsplit('/', 1)[-1]}", lake.read_bytes(key))
    files = gold.list_version(table, version)
    manifest = replace(
        current.manifest,
        version=version,
        location=location,
        created_at=datetime.now(UTC).isoformat(),
        files=[{"key": f.key, "size": f.size, "mtime_ns": f.mtime_ns} for f in files],
        token=listing_token(files),
    )
    gold.publish(manifest)
    return gold.current_state(table).state_id


def current_table(lake: LakeStorage, spec) -> pa.Table:
    state = GoldLake(lake).current_state(spec.name)
    return pa.concat_tables(
        pq.read_table(lake.filesystem.open_input_file(lake.path(k))) for k in state.parquet_keys
    )


def rewrite_table(lake: LakeStorage, spec, table: pa.Table) -> None:
    """Replace every data file at the current location by one file holding `table`."""
    state = GoldLake(lake).current_state(spec.name)
    for key in state.parquet_keys:
        delete_file(lake, key)
    write_file(lake, spec, table, f"rewritten-{uuid.uuid4().hex[:6]}.parquet")


def write_file(lake: LakeStorage, spec, table: pa.Table, name: str) -> str:
    state = GoldLake(lake).current_state(spec.name)
    key = f"{state.manifest.location}/{name}"
    with lake.filesystem.open_output_stream(lake.path(key)) as out:
        pq.write_table(table, out)
    return key


def delete_file(lake: LakeStorage, key: str) -> None:
    lake.filesystem.delete_file(lake.path(key))
