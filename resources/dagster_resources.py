"""The Dagster side of the checked settings: `ConfigurableResource`s over the plain operations.

`resources/storage.py`, `serving_db.py` and `settings_check.py` import no Dagster (goldctl's
fast commands use them); they hand out `LakeStorage`, `ServingDatabase` and `CheckedSettings`
from here on first use, so `from resources.storage import LakeStorage` keeps working.
A setting error raised by a resource is the `dg.Failure` twin of its plain class
(`failing`): a step that meets it fails with that one line as its description, and a retry
policy retries it only when the error says it may heal.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import dagster as dg
from pydantic import Field, PrivateAttr

from resources import serving_db, storage
from resources.settings_check import Checked, SettingError


@functools.cache
def failing(error_type: type[SettingError]) -> type[SettingError]:
    """`error_type` that is also a `dg.Failure` (same name, same message, `allow_retries` from
    its `retry`): caught as the plain error by goldctl, shown as one line by a run."""

    def __init__(
        self: Any,  # noqa: ANN401 - an instance of the class made below, of both bases
        message: str,
        retry: bool = False,
        setting: str | None = None,
    ) -> None:
        dg.Failure.__init__(self, description=message, allow_retries=retry)
        error_type.__init__(self, message, retry=retry, setting=setting)

    return type(
        error_type.__name__,
        (error_type, dg.Failure),
        {"__init__": __init__, "__str__": error_type.__str__, "__module__": __name__},
    )


class CheckedSettings(Checked, dg.ConfigurableResource):
    """A resource whose settings are checked at initialization outside a run (goldctl, the
    dashboard, sensors) and by the first step that uses it in a run."""

    settings_error: ClassVar[type[SettingError]] = failing(SettingError)
    _settings_passed: bool = PrivateAttr(default=False)  # see Checked.require_settings

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.run is None:
            self.require_settings()
        elif not self.settings_problems():  # pure; a wrong one is raised by the first step
            self._settings_passed = True  # that uses the resource, as its failure description


class LakeStorage(storage.LakeOps, CheckedSettings):
    """Where the lake lives: `s3://bucket/prefix` or a local directory (default `.local/lake`).

    Reached when it starts, in a run too: a missing bucket, denied access, an unreachable
    endpoint or a wrong region fails the run before any step works, in one line.
    """

    url: str = Field(
        default=storage.DEFAULT_LAKE_URL,
        description="LAKE_URL: s3://bucket/prefix, or a local directory.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3_ENDPOINT_URL: a non-AWS S3 endpoint (MinIO, moto, ...)."
    )
    s3_region: str | None = Field(default=None, description="AWS_REGION of the bucket.")

    _checked: bool = PrivateAttr(default=False)
    settings_error: ClassVar[type[SettingError]] = failing(storage.LakeConfigError)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.check()


_SERVING = serving_db.DEFAULTS


class ServingDatabase(serving_db.ServingOps, CheckedSettings):
    """Where the Gold serving copies live (schema `gold`) and the sync ledger (`platform`)."""

    url: str | None = Field(
        default=_SERVING["url"],
        description="RDS_URL: postgresql://user:password@host:5432/db. Unset: embedded PostgreSQL.",
    )
    embedded_pgdata: str = Field(
        default=_SERVING["embedded_pgdata"],
        description="Data folder of the embedded PostgreSQL used when RDS_URL is unset.",
    )
    dashboard_role: str = Field(
        default=_SERVING["dashboard_role"], description="Read-only role the dashboard logs in as."
    )
    lock_timeout_ms: int = Field(
        default=_SERVING["lock_timeout_ms"],
        description="How long the publish waits for readers before it retries.",
    )
    lock_budget_s: float = Field(
        default=_SERVING["lock_budget_s"],
        description="How long the publish keeps retrying before the sync fails (and is retried).",
    )
    sync_lock_wait_s: float = Field(
        default=_SERVING["sync_lock_wait_s"],
        description="How long a sync waits for another sync of the same table before it fails "
        "(as transient, naming the holder).",
    )
    connect_timeout_s: int = Field(
        default=_SERVING["connect_timeout_s"], description="Connect timeout in seconds."
    )
    storage_budget: str = Field(
        default=_SERVING["storage_budget"],
        description="RDS_STORAGE_BUDGET_GB: storage for this database in GB, fractions allowed "
        "(20 GB is the smallest gp volume); fits_storage_budget warns at 80 % of it.",
    )
    storage_size: str | None = Field(
        default=_SERVING["storage_size"],
        description="RDS_STORAGE_GB: the RDS volume's allocated storage in GB (fractions "
        "allowed); a sync that would not fit in what is left of it is refused.",
    )
    deployment: str | None = Field(
        default=_SERVING["deployment"],
        description="GOLD_DEPLOYMENT: the name this deployment owns its copies under (unset: "
        "its lake's location).",
    )

    settings_error: ClassVar[type[SettingError]] = failing(serving_db.ServingDbError)
