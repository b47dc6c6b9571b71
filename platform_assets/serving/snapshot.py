"""One read of a Gold table's lake state per run, handed to the sync and to every check.

A snapshot is what the run loads and what its checks judge: the stored files (state), their
schema as it is sent to PostgreSQL, and the expected rows and segment checksums (the manifest's
when the files are the published ones, else recomputed once by the engine). Reading the lake
again later in the run could judge another state than the one loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import pyarrow as pa

from platform_assets.lake import types as lake_types
from platform_assets.lake.fingerprint import VERSION as CHECKSUM_VERSION
from platform_assets.lake.fingerprint import Segments, fingerprint
from platform_assets.lake.tables import GoldLake, LakeFault, LakeTableState
from platform_assets.serving.catalog import Columns

if TYPE_CHECKING:  # pyarrow.dataset costs a second to import: only syncs that copy load it
    import pyarrow.dataset as ds

    from platform_assets.specs import GoldTableSpec
    from resources.sql_engine import SqlEngine


@dataclass(frozen=True)
class LakeSnapshot:
    table: str
    state: LakeTableState
    schema: pa.Schema  # as loaded into PostgreSQL (lake_types.load_schema)
    segments: Segments  # segment -> (rows, checksum)

    @cached_property
    def rows(self) -> int:
        return sum(n for n, _ in self.segments.values())

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.segments)

    @cached_property  # the type mapping once per snapshot, not at every use
    def columns(self) -> Columns:
        """(name, PostgreSQL type) in lake order: the shape the copy must have."""
        return lake_types.postgres_columns(self.schema)

    def dataset(self, lake: GoldLake) -> ds.Dataset:
        return lake.storage.dataset(self.state.parquet_keys)


def take(spec: GoldTableSpec, lake: GoldLake, engine: SqlEngine) -> LakeSnapshot | None:
    """The lake state of `spec`'s table now; None before its first published build.

    Raises `LakeFault` (naming the file) when a file or the manifest cannot be read as published.
    """
    read = lake.read_state(spec.name)  # every footer read: a fault names its file
    if read is None:
        return None
    state, schema = read[0], lake_types.load_schema(read[1])
    if state.changed_outside or state.manifest.checksums != CHECKSUM_VERSION:
        segments = engine.segment_checksums(  # the files listed above, not a new listing
            f"gold.{spec.name}", schema, spec.segment_column, files=list(state.parquet_keys)
        )
    else:
        segments = {k: (int(v[0]), int(v[1])) for k, v in state.manifest.segments.items()}
    return LakeSnapshot(spec.name, state, schema, segments)


def take_or_fault(
    spec: GoldTableSpec, gold: GoldLake, engine: SqlEngine
) -> tuple[LakeSnapshot | None, LakeFault | None]:
    """(the run's one lake read, None) or (None, the fault that kept it from being read)."""
    try:
        return take(spec, gold, engine), None
    except LakeFault as exc:  # the sync refuses it too, naming the file
        return None, exc
