"""Settings checked before anything runs: one line naming the setting and what to do.

Without this, `SQL_ENGINE=athena` without a region failed deep in a run with a 177-line
`NoRegionError`. Each resource says what is wrong with its settings (`settings_problems`, pure,
no network). Outside a run (goldctl, the dashboard, sensors) that is raised when the resource
initializes; inside a run it is raised by the first step that uses the resource, as a
`dg.Failure`, so the step's failure description is that line (a resource that fails to
initialize gets Dagster's wrapped, repeated traces instead). The lake is the exception: it is
reached when it starts, in a run too (`resources/dagster_resources.py`). Never a secret in the
line.

This module does not import Dagster (goldctl's fast commands use it): the Dagster side of these
errors (`dg.Failure` subclasses, `CheckedSettings`) is in `resources/dagster_resources.py`.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from resources.dagster_resources import CheckedSettings

_SETTING_NAME = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")


class SettingError(ValueError):
    """A setting is missing, malformed or unusable. goldctl prints it once and exits 2 (as JSON
    `{"error", "setting"}` with `--json`); in a run its `dg.Failure` twin
    (`dagster_resources.failing`) is the step's failure description. Not retried unless `retry`
    (an unreachable server may come back, a typo will not)."""

    def __init__(self, message: str, retry: bool = False, setting: str | None = None):
        super().__init__(message)
        self.description = message
        self.allow_retries = retry
        self.setting = setting or _first_setting(message)

    def __str__(self) -> str:
        return self.description or ""


def _first_setting(message: str) -> str | None:
    """The environment variable a message names first (`LAKE_URL: ...` -> LAKE_URL)."""
    found = _SETTING_NAME.search(message)
    return found.group(0) if found else None


class Checked:
    """Settings that say what is wrong with them (mixed into plain and Dagster resources)."""

    settings_error: type[SettingError] = SettingError

    def settings_problems(self) -> list[str]:
        return []

    def require_settings(self) -> None:
        """Raise every problem of the settings, in one line. Settings do not change once the
        resource is made: after they passed (here, or when a Dagster resource was set up for a
        run), `_settings_passed` is set and the resources' hot paths (each connection) skip
        the call."""
        if getattr(self, "_settings_passed", False):
            return
        raise_problems(self.settings_problems(), self.settings_error)
        self._settings_passed = True


def raise_problems(problems: list[str], error_type: type[SettingError] = SettingError) -> None:
    """All of one resource's problems as one line."""
    if problems:
        raise error_type("; ".join(problems))


def url_problem(name: str, value: str | None, schemes: tuple[str, ...], example: str) -> list[str]:
    """`name` must be a `scheme://host` URL; only its scheme is quoted (the rest may be secret)."""
    if not value:
        return []
    parts = urlsplit(value)
    if parts.scheme in schemes and parts.netloc:
        return []
    shown = f"{parts.scheme}://..." if parts.scheme else "no scheme"
    return [f"{name} must look like {example} (it has {shown})"]


# ---- each resource's settings rules, pure (the Dagster resources and goldctl call them) --------


def athena_problems(
    region: str | None, output_location: str | None, lake_is_s3: bool, database_prefix: str = ""
) -> list:
    problems = []
    if not (region or os.environ.get("AWS_DEFAULT_REGION")):
        problems.append("SQL_ENGINE=athena needs a region: set ATHENA_REGION or AWS_REGION")
    if not output_location:
        problems.append(
            "SQL_ENGINE=athena needs ATHENA_OUTPUT_LOCATION=s3://bucket/prefix/ for results"
        )
    problems += url_problem(
        "ATHENA_OUTPUT_LOCATION", output_location, ("s3",), "s3://bucket/prefix/"
    )
    if not lake_is_s3:
        problems.append("SQL_ENGINE=athena works on an S3 lake: set LAKE_URL=s3://bucket/prefix")
    if not re.fullmatch(r"[a-z0-9_]*", database_prefix):  # it goes into SQL unquoted: a name
        problems.append(
            "ATHENA_DATABASE_PREFIX may hold only lowercase letters, digits and _ "
            f"(a Glue database name's start, e.g. prod_; it is {database_prefix!r})"
        )
    return problems


def duckdb_problems(threads: int) -> list[str]:
    return [f"DUCKDB_THREADS must be at least 1 (it is {threads})"] if threads < 1 else []


def webhook_problems(url: str | None) -> list[str]:
    return url_problem("ALERT_WEBHOOK_URL", url, ("http", "https"), "https://hooks.slack.com/...")


def __getattr__(name: str) -> type[CheckedSettings]:
    if name == "CheckedSettings":  # the Dagster resource base, imported only when asked for
        from resources.dagster_resources import CheckedSettings

        return CheckedSettings
    raise AttributeError(name)
