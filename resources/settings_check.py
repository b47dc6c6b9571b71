"""Settings checked before anything runs: one line naming the setting and what to do.

Without this, `SQL_ENGINE=athena` without a region failed deep in a run with a 177-line
`NoRegionError`. Each resource says what is wrong with its settings (`settings_problem`, pure,
no network). Outside a run (goldctl, the dashboard, sensors) that is raised when the resource
initializes; inside a run it is raised by the first step that uses the resource, as a
`dg.Failure`, so the step's failure description is that line (a resource that fails to
initialize gets Dagster's wrapped, repeated traces instead). Never a secret in the line.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

import dagster as dg


class SettingError(dg.Failure, ValueError):
    """A setting is missing, malformed or unusable. A `dg.Failure`, so a run step shows it as
    its failure description; a `ValueError`, so goldctl prints it once and exits 2. Not retried
    by a retry policy unless `retry` (an unreachable server may come back, a typo will not)."""

    def __init__(self, message: str, retry: bool = False):
        super().__init__(description=message, allow_retries=retry)

    def __str__(self) -> str:
        return self.description or ""


class CheckedSettings(dg.ConfigurableResource):
    """A resource whose settings are checked at initialization (see the module docstring)."""

    settings_error: ClassVar[type[SettingError]] = SettingError

    def settings_problems(self) -> list[str]:
        return []

    def require_settings(self) -> None:
        problems = self.settings_problems()
        if problems:
            raise self.settings_error("; ".join(problems))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.run is None:
            self.require_settings()


def url_problem(name: str, value: str | None, schemes: tuple[str, ...], example: str) -> list[str]:
    """`name` must be a `scheme://host` URL; only its scheme is quoted (the rest may be secret)."""
    if not value:
        return []
    parts = urlsplit(value)
    if parts.scheme in schemes and parts.netloc:
        return []
    shown = f"{parts.scheme}://..." if parts.scheme else "no scheme"
    return [f"{name} must look like {example} (it has {shown})"]
