"""The serving database: RDS PostgreSQL from `RDS_URL`, or an embedded PostgreSQL when unset."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field

from resources import embedded_pg
from resources.settings_check import CheckedSettings, SettingError


class ServingDbError(SettingError):
    """The serving database cannot be reached with the configured settings."""


_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL with any password replaced, safe for logs, metadata and errors.

    Covers `user:password@host`, a `?password=` query parameter and the libpq keyword form
    (`host=... password=...`).
    """
    if "://" not in url:
        return _KEYWORD_PASSWORD.sub(r"\1***", url)
    parts = urlsplit(url)
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    if parts.query:
        query = "&".join(
            f"{k}=***" if k.lower() == "password" else f"{k}={v}" if sep else k
            for k, sep, v in (item.partition("=") for item in parts.query.split("&"))
        )
        parts = parts._replace(query=query)
    return urlunsplit(parts)


def _secrets(conninfo: str) -> list[str]:
    """The password as written in `conninfo` and as libpq decodes it (to scrub messages)."""
    found = []
    try:
        password = conninfo_to_dict(conninfo).get("password")
    except psycopg.Error:
        password = None
    if password:
        found.append(str(password))
    if "://" in conninfo:
        raw = urlsplit(conninfo).password
        if raw:
            found.append(raw)
    return found


def error_reason(exc: BaseException | str, conninfo: str) -> str:
    """A driver error (or its message) as one line, without `conninfo`'s password in any form."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    reason = " ".join(lines) or type(exc).__name__
    for secret in _secrets(conninfo):
        reason = reason.replace(secret, "***")
    return reason


def libpq_url(url: str) -> str:
    """`postgresql+psycopg://...` (SQLAlchemy style) -> `postgresql://...` (libpq style)."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url.strip())


def with_user(url: str, user: str, password: str | None = None) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    cred = user if not password else f"{user}:{password}"
    return urlunsplit(parts._replace(netloc=f"{cred}@{host}"))


class ServingDatabase(CheckedSettings):
    """Where the Gold serving copies live (schema `gold`) and the sync ledger (`platform`)."""

    url: str | None = Field(
        default=None,
        description="RDS_URL: postgresql://user:password@host:5432/db. Unset: embedded PostgreSQL.",
    )
    embedded_pgdata: str = Field(
        default=embedded_pg.DEFAULT_PGDATA,
        description="Data folder of the embedded PostgreSQL used when RDS_URL is unset.",
    )
    dashboard_role: str = Field(
        default="dashboard_reader", description="Read-only role the dashboard logs in as."
    )
    lock_timeout_ms: int = Field(
        default=100, description="How long the publish waits for readers before it retries."
    )
    lock_budget_s: float = Field(
        default=120.0,
        description="How long the publish keeps retrying before the sync fails (and is retried).",
    )
    sync_lock_wait_s: float = Field(
        default=600.0,
        description="How long a sync waits for another sync of the same table before it fails "
        "(as transient, naming the holder).",
    )
    connect_timeout_s: int = Field(default=10, description="Connect timeout in seconds.")
    storage_budget_gb: int = Field(
        default=20,
        description="RDS_STORAGE_BUDGET_GB: storage for this database (20 GB is the smallest gp "
        "volume); fits_storage_budget warns at 80 % of it.",
    )

    @property
    def is_embedded(self) -> bool:
        return not self.url

    def settings_problems(self) -> list[str]:
        if not self.url:
            return []
        conninfo = libpq_url(self.url)
        scheme = conninfo.split("://", 1)[0] if "://" in conninfo else None
        if scheme not in (None, "postgresql"):
            return [
                f"RDS_URL must be postgresql://user:password@host:5432/db or libpq keywords "
                f"(it starts with {scheme}://)"
            ]
        try:
            conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            return [f"RDS_URL is not a PostgreSQL connection string: {error_reason(exc, conninfo)}"]
        return []

    def conninfo(self) -> str:
        """The libpq URL (may carry a password: never log it, use `display_url`)."""
        self.require_settings()
        if self.url:
            return libpq_url(self.url)
        return embedded_pg.url(self.embedded_pgdata)

    @property
    def display_url(self) -> str:
        return redact(self.conninfo())

    def connect(self, autocommit: bool = False, **kwargs) -> psycopg.Connection:
        conninfo = self.conninfo()
        try:
            return psycopg.connect(
                conninfo,
                autocommit=autocommit,
                connect_timeout=self.connect_timeout_s,
                **{"application_name": "gold-platform", **kwargs},
            )
        except psycopg.OperationalError as exc:
            reason = error_reason(exc, conninfo)
            setting = "RDS_URL" if self.url else f"embedded PostgreSQL at {self.embedded_pgdata}"
            raise ServingDbError(
                f"cannot connect to the serving database ({setting}: {redact(conninfo)}): {reason}",
                retry=True,
            ) from None

    def dashboard_url(self) -> str:
        """URL for the read-only dashboard role on the embedded server (trust auth)."""
        return with_user(self.conninfo(), self.dashboard_role)
