"""The lake: one storage layer for `s3://bucket/prefix` and a local directory.

Everything that touches lake files (Parquet datasets, manifests, listings) goes through
`LakeStorage`, so the code paths are the same on S3 and on a laptop. pyarrow's filesystems do
the I/O; the S3 endpoint is configurable, so MinIO, moto or localstack work like AWS.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import Field, PrivateAttr

from resources.settings_check import CheckedSettings, SettingError, url_problem


class LakeConfigError(SettingError):
    """The lake settings point at something that does not exist or cannot be reached."""


@dataclass(frozen=True)
class StoredObject:
    """One file in the lake, as the store reports it (the basis of content tokens)."""

    key: str  # relative to the lake root, '/'-separated
    size: int
    mtime_ns: int


def listing_token(objects: list[StoredObject]) -> str:
    """A short hash of what is stored: changes when any writer adds, replaces or removes a file."""
    digest = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: o.key):
        digest.update(f"{obj.key}\t{obj.size}\t{obj.mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class LakeStorage(CheckedSettings):
    """Where the lake lives: `s3://bucket/prefix` or a local directory (default `.local/lake`)."""

    url: str = Field(
        default=".local/lake",
        description="LAKE_URL: s3://bucket/prefix, or a local directory.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3_ENDPOINT_URL: a non-AWS S3 endpoint (MinIO, moto, ...)."
    )
    s3_region: str | None = Field(default=None, description="AWS_REGION of the bucket.")

    _checked: bool = PrivateAttr(default=False)
    settings_error: ClassVar[type[SettingError]] = LakeConfigError

    # ---- location -------------------------------------------------------------------------
    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    @cached_property
    def _root(self) -> str:
        """The lake root as a pyarrow filesystem path (bucket/prefix, or an absolute dir)."""
        if self.is_s3:
            parsed = urlparse(self.url)
            if not parsed.netloc:
                raise LakeConfigError(
                    f"LAKE_URL {self.url!r} names no bucket: set it to s3://bucket/prefix"
                )
            return f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        if "://" in self.url:
            raise LakeConfigError(
                f"LAKE_URL {self.url!r} is neither s3://bucket/prefix nor a local directory: "
                "set it to one of them"
            )
        return str(Path(self.url).expanduser().resolve())

    @cached_property
    def filesystem(self) -> pafs.FileSystem:
        if not self.is_s3:
            return pafs.LocalFileSystem()
        kwargs: dict = {"region": self.s3_region or os.environ.get("AWS_REGION") or "us-east-1"}
        if self.s3_endpoint_url:
            parsed = urlparse(self.s3_endpoint_url)
            kwargs["endpoint_override"] = parsed.netloc or parsed.path
            kwargs["scheme"] = parsed.scheme or "https"
            kwargs["force_virtual_addressing"] = False
        return pafs.S3FileSystem(**kwargs)

    def uri(self, key: str = "") -> str:
        """A human-readable address for metadata and logs (never carries credentials)."""
        base = self.url.rstrip("/") if self.is_s3 else self._root
        return f"{base}/{key}".rstrip("/") if key else base

    def path(self, key: str) -> str:
        return f"{self._root}/{key.strip('/')}".rstrip("/")

    def settings_problems(self) -> list[str]:
        try:
            self._root  # noqa: B018 (parses LAKE_URL)
        except LakeConfigError as exc:
            return [str(exc)]
        return url_problem(
            "S3_ENDPOINT_URL", self.s3_endpoint_url, ("http", "https"), "http://host:9000"
        )

    def check(self) -> None:
        """Fail early, naming the setting, when the lake cannot be reached."""
        if self._checked:
            return
        self.require_settings()
        if self.is_s3:
            bucket = self._root.split("/", 1)[0]
            try:
                info = self.filesystem.get_file_info(bucket)
            except OSError as exc:
                raise LakeConfigError(
                    f"LAKE_URL: cannot reach bucket {bucket!r} at "
                    f"{self.s3_endpoint_url or 'AWS S3'} (S3_ENDPOINT_URL): {type(exc).__name__}",
                    retry=True,
                ) from None
            if info.type == pafs.FileType.NotFound:
                raise LakeConfigError(
                    f"LAKE_URL: bucket {bucket!r} does not exist at "
                    f"{self.s3_endpoint_url or 'AWS S3'} (S3_ENDPOINT_URL)"
                )
        else:
            Path(self._root).mkdir(parents=True, exist_ok=True)
        self._checked = True

    # ---- objects ----------------------------------------------------------------------------
    def list(self, prefix: str) -> list[StoredObject]:
        """Every file below `prefix` (recursive), sorted by key; [] when nothing is there."""
        self.check()
        selector = pafs.FileSelector(self.path(prefix), recursive=True, allow_not_found=True)
        root_len = len(self._root) + 1
        objects = [
            StoredObject(info.path[root_len:], info.size or 0, info.mtime_ns or 0)
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File
        ]
        return sorted(objects, key=lambda o: o.key)

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of `prefix`."""
        self.check()
        selector = pafs.FileSelector(self.path(prefix), recursive=False, allow_not_found=True)
        names = {
            info.base_name
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.Directory
        }
        return sorted(names)

    def exists(self, key: str) -> bool:
        self.check()
        return self.filesystem.get_file_info(self.path(key)).type != pafs.FileType.NotFound

    def read_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        self.check()
        try:
            with self.filesystem.open_input_stream(self.path(key)) as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write one object atomically: a single PUT on S3, write-then-rename locally."""
        self.check()
        target = self.path(key)
        if self.is_s3:
            with self.filesystem.open_output_stream(target) as out:
                out.write(data)
            return
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{target}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as out:
            out.write(data)
        os.replace(tmp, target)

    def delete_prefix(self, prefix: str) -> None:
        """Remove everything below `prefix`; a missing prefix is fine."""
        self.check()
        path = self.path(prefix)
        if self.filesystem.get_file_info(path).type == pafs.FileType.NotFound:
            return
        self.filesystem.delete_dir_contents(path, missing_dir_ok=True)
        with contextlib.suppress(FileNotFoundError, OSError):
            self.filesystem.delete_dir(path)

    # ---- Parquet ----------------------------------------------------------------------------
    def write_parquet(
        self,
        prefix: str,
        data: pa.Table | pa.RecordBatchReader,
        partition_cols: list[str] | None = None,
        rows_per_file: int = 1_000_000,
    ) -> list[str]:
        """Write a dataset below `prefix` (Hive-partitioned if asked); returns the written keys."""
        self.check()
        written: list[str] = []
        root_len = len(self._root) + 1

        def visitor(file):
            written.append(file.path[root_len:])

        schema = data.schema
        partitioning = (
            ds.partitioning(pa.schema([schema.field(c) for c in partition_cols]), flavor="hive")
            if partition_cols
            else None
        )
        ds.write_dataset(
            data,
            self.path(prefix),
            filesystem=self.filesystem,
            format="parquet",
            partitioning=partitioning,
            basename_template="part-{i}.parquet",
            max_rows_per_file=rows_per_file,
            max_rows_per_group=min(rows_per_file, 256_000),
            existing_data_behavior="overwrite_or_ignore",
            file_visitor=visitor,
        )
        return sorted(written)

    def dataset(self, prefix_or_keys: str | list[str], hive: bool = False) -> ds.Dataset:
        """A lazy Parquet dataset over a folder or an explicit list of files."""
        self.check()
        if isinstance(prefix_or_keys, list):
            source = [self.path(k) for k in prefix_or_keys]
        else:
            source = self.path(prefix_or_keys)
        return ds.dataset(
            source,
            filesystem=self.filesystem,
            format="parquet",
            partitioning="hive" if hive else None,
        )

    def parquet_row_count(self, keys: list[str]) -> int:
        """Rows in these Parquet files, from their footers (no data read)."""
        total = 0
        for key in keys:
            with self.filesystem.open_input_file(self.path(key)) as handle:
                total += pq.ParquetFile(handle).metadata.num_rows
        return total
