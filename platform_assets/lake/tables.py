"""The Gold lake contract: versioned folders plus a manifest written last.

    gold/<table>/version=<version_id>/part-*.parquet   one immutable folder per build
    gold/<table>/_manifest.json                        the truth about what is current

The manifest is one PUT, so switching versions is atomic on S3. What a reader should trust,
though, is what is *stored* at the current location: `current_state()` lists it, so files added
by an analyst's `INSERT INTO` or a hand upload change the state's token even though the manifest
did not change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from resources.storage import StoredObject, listing_token

if TYPE_CHECKING:
    import pyarrow as pa

    from resources.storage import LakeOps

MANIFEST = "_manifest.json"
LAKE_LAYERS = ("bronze", "silver", "gold")  # the lake's folders and the engines' schemas
GOLD = LAKE_LAYERS[-1]


class LakeFault(RuntimeError):
    """One Gold table's lake location cannot be read as published (a bad file or manifest).

    The message names the table and the object; callers report it for that table only and go
    on with the others.
    """

    def __init__(self, table: str, message: str):
        super().__init__(f"gold.{table}: {message}")
        self.table = table


def new_version_id(content_key: str, now: datetime | None = None) -> str:
    """A version id that sorts by time: UTC timestamp plus a short hash of what was built."""
    now = now or datetime.now(UTC)
    short = hashlib.sha256(content_key.encode()).hexdigest()[:8]
    return f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{short}"


def version_time(version_id: str) -> datetime | None:
    """When a version id made by `new_version_id` was built (None: not one of ours)."""
    try:
        built = datetime.strptime(version_id.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ")
    except ValueError:
        return None
    return built.replace(tzinfo=UTC)


def table_prefix(table: str) -> str:
    return f"{GOLD}/{table}"


def version_prefix(table: str, version_id: str) -> str:
    return f"{table_prefix(table)}/version={version_id}"


@dataclass
class Manifest:
    """What the platform published as the current version of one Gold table."""

    table: str
    version: str
    location: str  # lake key of the version folder
    created_at: str  # ISO-8601 UTC
    row_count: int
    fingerprint: str
    schema: list[dict]  # [{"name": ..., "type": ...}]
    files: list[dict]  # [{"key", "size", "mtime_ns"}]
    token: str  # listing token of `files`
    query_id: str | None = None
    data_scanned_bytes: int | None = None
    segments: dict[str, list[int]] = field(default_factory=dict)  # segment -> [rows, checksum]
    inputs: str | None = None  # what the version was built from (platform_assets/build_record.py)
    checksums: int = 1  # the fingerprint's rendering `segments` were computed with

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class LakeTableState:
    """What is stored right now at a Gold table's current location."""

    table: str
    manifest: Manifest
    files: tuple[StoredObject, ...]
    token: str

    # Derived once per state (a run asks for them many times): cached on the frozen instance.
    @cached_property
    def version(self) -> str:
        return self.manifest.version

    @cached_property
    def changed_outside(self) -> bool:
        """True when the stored files differ from what the platform published."""
        return self.token != self.manifest.token

    @cached_property
    def state_id(self) -> str:
        """The version users see: the published version, suffixed when files changed since."""
        return self.version if not self.changed_outside else f"{self.version}+{self.token[:8]}"

    @cached_property
    def parquet_keys(self) -> list[str]:
        return [f.key for f in self.files if _is_data_file(f.key)]

    @cached_property
    def created_at(self) -> datetime:
        if self.changed_outside and self.files:
            newest = max(f.mtime_ns for f in self.files)
            return datetime.fromtimestamp(newest / 1e9, UTC)
        return manifest_created_at(self.manifest)


def manifest_created_at(manifest: Manifest) -> datetime:
    """The manifest's build time, timezone-aware (a naive value is UTC, as the contract says);
    ValueError/TypeError when it is not an ISO-8601 timestamp."""
    created = datetime.fromisoformat(manifest.created_at)
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def _is_data_file(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return not name.startswith(("_", ".")) and not name.endswith((".tmp", ".crc"))


class GoldLake:
    """Reads and writes the versioned Gold tables of one lake."""

    def __init__(self, storage: LakeOps):
        self.storage = storage

    def read_manifest(self, table: str) -> Manifest | None:
        """The current manifest; None before the first build. A manifest that is missing while
        versions exist, or that cannot be parsed, is a `LakeFault`."""
        key = f"{table_prefix(table)}/{MANIFEST}"
        raw = self.storage.read_bytes(key)
        if raw is None:
            versions = self.versions(table)
            if versions:
                raise LakeFault(
                    table,
                    f"{self.storage.uri(key)} is missing but {len(versions)} version folder(s) "
                    f"exist (newest {versions[-1]}): restore it or rebuild the table",
                )
            return None
        try:
            manifest = Manifest.from_json(raw)
        except (ValueError, TypeError, AttributeError) as exc:
            reason = str(exc).splitlines()[0][:200]
            raise LakeFault(
                table, f"{self.storage.uri(key)} is not a valid manifest: {reason}"
            ) from None
        if manifest.table != table or not manifest.version:
            raise LakeFault(table, f"{self.storage.uri(key)} names table {manifest.table!r}")
        try:
            manifest_created_at(manifest)
        except (ValueError, TypeError):
            raise LakeFault(
                table,
                f"{self.storage.uri(key)} has created_at {str(manifest.created_at)[:60]!r}, not an "
                "ISO-8601 timestamp: rebuild the table or fix the manifest",
            ) from None
        return manifest

    def list_version(self, table: str, version_id: str) -> list[StoredObject]:
        return [
            o
            for o in self.storage.list_keys(version_prefix(table, version_id))
            if _is_data_file(o.key)
        ]

    def current_state(self, table: str) -> LakeTableState | None:
        """The manifest plus a fresh listing of its location; None before the first build."""
        manifest = self.read_manifest(table)
        if manifest is None:
            return None
        files = self.list_version(table, manifest.version)
        return LakeTableState(table, manifest, tuple(files), listing_token(files))

    def read_state(self, table: str) -> tuple[LakeTableState, pa.Schema] | None:
        """The current state and the schema its files share (`current_state`, `read_footers`):
        what a sync's snapshot reads of the lake, in one call; None before the first build."""
        state = self.current_state(table)
        if state is None:
            return None
        return state, self.read_footers(state)[0]

    def read_footers(self, state: LakeTableState) -> tuple[pa.Schema, int]:
        """(the schema every data file of `state` shares, their rows), from the files' footers.

        A file that is not readable Parquet, or whose columns differ from the others', is a
        `LakeFault` naming the file, so one bad upload stops that table only, with a reason.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema, first, rows = None, "", 0
        keys = state.parquet_keys
        for key, path in zip(keys, self.storage.paths(keys), strict=True):
            try:
                with self.storage.filesystem.open_input_file(path) as handle:
                    footer = pq.ParquetFile(handle)
                    file_schema, rows = footer.schema_arrow, rows + footer.metadata.num_rows
            except (pa.ArrowException, OSError) as exc:
                reason = str(exc).splitlines()[0][:200]
                raise LakeFault(
                    state.table, f"{self.storage.uri(key)} is not a readable Parquet file: {reason}"
                ) from None
            if schema is None:
                schema, first = file_schema, key
            elif file_schema.names != schema.names:
                theirs, ours = set(file_schema.names), set(schema.names)
                raise LakeFault(
                    state.table,
                    f"{self.storage.uri(key)} has other columns than {first.rsplit('/', 1)[-1]}"
                    f" (only there: {', '.join(sorted(theirs - ours)) or 'none'}; missing: "
                    f"{', '.join(sorted(ours - theirs)) or 'none'}; order may differ)",
                )
        if schema is None:
            raise LakeFault(state.table, f"version {state.version} has no data files")
        return schema, rows

    def publish(self, manifest: Manifest) -> None:
        """Make `manifest` current: one atomic PUT, always the last write of a build."""
        self.storage.write_bytes(f"{table_prefix(manifest.table)}/{MANIFEST}", manifest.to_json())

    def versions(self, table: str) -> list[str]:
        return sorted(
            d.split("=", 1)[1] for d in self.storage.list_dirs(table_prefix(table)) if "=" in d
        )

    def prune(self, table: str, keep_days: float, keep_min: int = 2) -> list[str]:
        """Remove versions older than the retention window, never the current or newest few."""
        manifest = self.read_manifest(table)
        current = manifest.version if manifest else None
        versions = self.versions(table)
        cutoff = datetime.now(UTC) - timedelta(days=keep_days)
        removable = []
        for version in versions[:-keep_min] if keep_min else versions:
            if version == current:
                continue
            built = version_time(version)
            if built is None:
                continue  # not ours: leave it alone
            if built < cutoff:
                removable.append(version)
        for version in removable:
            self.storage.delete_prefix(version_prefix(table, version))
        return removable
