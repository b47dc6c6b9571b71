"""The lake: one storage layer for `s3://bucket/prefix` and a local directory.

Everything that touches lake files (Parquet datasets, manifests, listings) goes through
`LakeOps`, so the code paths are the same on S3 and on a laptop. pyarrow's filesystems do
the I/O; the S3 endpoint is configurable, so MinIO, moto or localstack work like AWS.
`LakeStorage` (the Dagster resource, `resources/dagster_resources.py`) and `PlainLake`
(goldctl's fast commands, no Dagster import) are the same operations on the same settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pyarrow.fs as pafs

from resources.settings_check import Checked, SettingError, url_problem

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pyarrow as pa
    import pyarrow.dataset as ds

    from resources.dagster_resources import LakeStorage

DEFAULT_LAKE_URL = ".local/lake"
# The start-up probe of an S3 lake: short timeouts and one attempt, so a wrong endpoint is named
# in seconds, not after the SDK's retries (the lake's own filesystem keeps the SDK defaults).
PROBE_CONNECT_TIMEOUT_S = 5.0
PROBE_REQUEST_TIMEOUT_S = 5.0


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


class LakeOps(Checked):
    """The lake's operations on its settings `url`, `s3_endpoint_url`, `s3_region` (see
    `LakeStorage` for what each means); `check()` runs once before the first access."""

    url: str
    s3_endpoint_url: str | None
    s3_region: str | None
    _checked: bool
    settings_error: type[SettingError] = LakeConfigError

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
        return pafs.S3FileSystem(**self._s3_options())

    @property
    def region(self) -> str:
        return self.s3_region or os.environ.get("AWS_REGION") or "us-east-1"

    def _s3_options(self) -> dict:
        kwargs: dict = {"region": self.region}
        if self.s3_endpoint_url:
            parsed = urlparse(self.s3_endpoint_url)
            kwargs["endpoint_override"] = parsed.netloc or parsed.path
            kwargs["scheme"] = parsed.scheme or "https"
            kwargs["force_virtual_addressing"] = False
        return kwargs

    def uri(self, key: str = "") -> str:
        """A human-readable address for metadata and logs (never carries credentials)."""
        base = self.url.rstrip("/") if self.is_s3 else self._root
        return f"{base}/{key}".rstrip("/") if key else base

    def path(self, key: str) -> str:
        return f"{self._root}/{key.strip('/')}".rstrip("/")

    def paths(self, keys: Iterable[str]) -> list[str]:
        """`path` of each key (a version's files, in one call)."""
        return [self.path(key) for key in keys]

    def settings_problems(self) -> list[str]:
        try:
            self._root  # noqa: B018 (parses LAKE_URL)
        except LakeConfigError as exc:
            return [str(exc)]
        return url_problem(
            "S3_ENDPOINT_URL", self.s3_endpoint_url, ("http", "https"), "http://host:9000"
        )

    def check(self) -> None:
        """Fail early, in one line naming the setting and the cause, when the lake cannot be
        reached (called when the resource starts, and before the first access)."""
        if self._checked:
            return
        self.require_settings()
        if self.is_s3:
            self._probe_bucket()
        else:
            try:
                Path(self._root).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self.settings_error(
                    f"LAKE_URL: cannot create the lake directory {self._root}: "
                    f"{exc.strerror or type(exc).__name__}"
                ) from None
        self._checked = True

    def _probe_bucket(self) -> None:
        bucket = self._root.split("/", 1)[0]
        where = (
            f"{self.s3_endpoint_url} (S3_ENDPOINT_URL)"
            if self.s3_endpoint_url
            else f"AWS S3 in {self.region} (AWS_REGION)"
        )
        probe = pafs.S3FileSystem(
            **self._s3_options(),
            connect_timeout=PROBE_CONNECT_TIMEOUT_S,
            request_timeout=PROBE_REQUEST_TIMEOUT_S,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
        )
        try:
            info = probe.get_file_info(bucket)
        except OSError as exc:
            cause, retry = s3_cause(str(exc))
            raise self.settings_error(
                f"LAKE_URL: cannot use bucket {bucket!r} at {where}: {cause}",
                retry=retry,
                setting="LAKE_URL",
            ) from None
        if info.type == pafs.FileType.NotFound:
            raise self.settings_error(f"LAKE_URL: bucket {bucket!r} does not exist at {where}")

    # ---- objects ----------------------------------------------------------------------------
    def list_keys(self, prefix: str) -> list[StoredObject]:
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

    # ---- Parquet (pyarrow.dataset is imported on first use: it costs a second) -------------
    def write_parquet(
        self,
        prefix: str,
        data: pa.Table | pa.RecordBatchReader,
        partition_cols: list[str] | None = None,
        rows_per_file: int = 1_000_000,
    ) -> list[str]:
        """Write a dataset below `prefix` (Hive-partitioned if asked); returns the written keys."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        self.check()
        written: list[str] = []
        root_len = len(self._root) + 1

        def visitor(file: ds.WrittenFile) -> None:
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
        import pyarrow.dataset as ds

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
        import pyarrow.parquet as pq

        total = 0
        for key in keys:
            with self.filesystem.open_input_file(self.path(key)) as handle:
                total += pq.ParquetFile(handle).metadata.num_rows
        return total


# What pyarrow's S3 errors say (AWS SDK error names and curl codes), as the cause a person acts
# on; `retry` when the cause may go away by itself.
_S3_CAUSES = (
    (("curlCode: 6", "resolve host", "resolve hostname"), "DNS lookup failed", True),
    (("curlCode: 7", "Connection refused", "Could not connect"), "connection refused", True),
    (("curlCode: 28", "Timeout was reached", "timed out"), "timed out", True),
    (
        ("ACCESS_DENIED", "HTTP status 403", "InvalidAccessKeyId", "SignatureDoesNotMatch"),
        "access denied (check the AWS credentials and the bucket policy)",
        False,
    ),
    (
        ("HTTP status 301", "PermanentRedirect", "AuthorizationHeaderMalformed"),
        "wrong region (the bucket is in another region than AWS_REGION)",
        False,
    ),
    (("NETWORK_CONNECTION",), "network error", True),
)


def s3_cause(message: str) -> tuple[str, bool]:
    """(the cause of an S3 error in a few words, whether it may heal by itself)."""
    for needles, cause, retry in _S3_CAUSES:
        if any(n in message for n in needles):
            return cause, retry
    first = message.splitlines()[0] if message else "unknown error"
    return first.split(": ", 1)[-1][:200], True


class PlainLake(LakeOps):
    """The lake without Dagster (goldctl's fast commands): the same operations and checks."""

    def __init__(
        self,
        url: str = DEFAULT_LAKE_URL,
        s3_endpoint_url: str | None = None,
        s3_region: str | None = None,
    ):
        self.url, self.s3_endpoint_url, self.s3_region = url, s3_endpoint_url, s3_region
        self._checked = False


def __getattr__(name: str) -> type[LakeStorage]:
    if name == "LakeStorage":  # the Dagster resource, imported only when asked for
        from resources.dagster_resources import LakeStorage

        return LakeStorage
    raise AttributeError(name)
