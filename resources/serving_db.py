"""The serving database: RDS PostgreSQL from `RDS_URL`, or an embedded PostgreSQL when unset.

`ServingOps` are the operations on its settings; `ServingDatabase` (the Dagster resource,
`resources/dagster_resources.py`) and `PlainServing` (goldctl's fast commands, no Dagster
import) share them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import Row

from resources import embedded_pg
from resources.settings_check import Checked, SettingError

if TYPE_CHECKING:
    from resources.dagster_resources import ServingDatabase


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


def one_row(cursor: psycopg.Cursor[Row]) -> Row:
    """The row of a statement that always returns exactly one (an aggregate, `SELECT now()`)."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("a statement that returns one row returned none")
    return row


def gigabytes(text: object) -> float | None:
    """A positive number of GB, or None (unset or not one)."""
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if 0 < value < float("inf") else None


def with_user(url: str, user: str, password: str | None = None) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    cred = user if not password else f"{user}:{password}"
    return urlunsplit(parts._replace(netloc=f"{cred}@{host}"))


# Defaults of the serving settings (the Dagster resource's fields and `PlainServing` alike).
DEFAULTS = {
    "url": None,
    "embedded_pgdata": embedded_pg.DEFAULT_PGDATA,
    "dashboard_role": "dashboard_reader",
    "lock_timeout_ms": 100,
    "lock_budget_s": 120.0,
    "sync_lock_wait_s": 600.0,
    "connect_timeout_s": 10,
    "storage_budget": "20",
    "storage_size": None,
    "deployment": None,
}


class ServingOps(Checked):
    """Where the Gold serving copies live (schema `gold`) and the sync ledger (`platform`);
    the settings' meaning is on `ServingDatabase`'s fields."""

    url: str | None
    embedded_pgdata: str
    dashboard_role: str
    lock_timeout_ms: int
    lock_budget_s: float
    sync_lock_wait_s: float
    connect_timeout_s: int
    storage_budget: str  # RDS_STORAGE_BUDGET_GB, a number of GB (fractions allowed)
    storage_size: str | None  # RDS_STORAGE_GB, the volume's allocated size in GB
    deployment: str | None
    settings_error: type[SettingError] = ServingDbError

    @property
    def storage_budget_gb(self) -> float:
        return gigabytes(self.storage_budget) or 0.0

    @property
    def storage_gb(self) -> float | None:
        return gigabytes(self.storage_size)

    @property
    def is_embedded(self) -> bool:
        return not self.url

    def settings_problems(self) -> list[str]:
        return [
            f"{name} must be a number of GB above 0, e.g. 20 or 0.5 (it is {value!r})"
            for name, value in (
                ("RDS_STORAGE_BUDGET_GB", self.storage_budget),
                ("RDS_STORAGE_GB", self.storage_size),
            )
            if value not in (None, "") and gigabytes(value) is None
        ] + self._url_problems()

    def _url_problems(self) -> list[str]:
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
        if not getattr(self, "_settings_passed", False):  # see require_settings
            self.require_settings()
        if self.url:
            return libpq_url(self.url)
        try:
            return embedded_pg.url(self.embedded_pgdata)
        except embedded_pg.EmbeddedPgError as exc:  # down (a full disk, a bad setting): may heal
            raise self.settings_error(
                f"the serving database is unavailable: {exc}",
                retry=True,
                setting="EMBEDDED_PGDATA",
            ) from None

    @property
    def display_url(self) -> str:
        return redact(self.conninfo())

    def connect(self, autocommit: bool = False, **kwargs: Any) -> psycopg.Connection:  # noqa: ANN401
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
            raise self.settings_error(
                f"cannot connect to the serving database ({setting}: {redact(conninfo)}): {reason}",
                retry=True,
                setting="RDS_URL" if self.url else "EMBEDDED_PGDATA",
            ) from None

    def dashboard_url(self) -> str:
        """URL for the read-only dashboard role on the embedded server (trust auth)."""
        return with_user(self.conninfo(), self.dashboard_role)


class PlainServing(ServingOps):
    """The serving database without Dagster (goldctl's fast commands)."""

    def __init__(self, **settings: object) -> None:
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown serving settings: {', '.join(sorted(unknown))}")
        for name, default in DEFAULTS.items():
            setattr(self, name, settings.get(name, default))


def __getattr__(name: str) -> type[ServingDatabase]:
    if name == "ServingDatabase":  # the Dagster resource, imported only when asked for
        from resources.dagster_resources import ServingDatabase

        return ServingDatabase
    raise AttributeError(name)
