"""The freshness badge: pure functions from ledger ages to a colour and a line of text.

The badge reads `platform.sync_ledger` and `platform.lake_heads` (the rows the lag check, the
alert sensor and `goldctl status` read). The data's age is the age of the lake version RDS
holds (when Athena/DuckDB built it, as far as the platform's clock vouches for it: a lake clock
in the future or far past counts from when the platform first saw the version), judged against
the table's spec: older than `freshness_warn` is amber, older than `freshness_sla` is red, no
ledger row is red. When the lake holds a newer state than the copy, the badge says since when
and why it has not landed (pending, refused, failing): amber within the spec's lag tolerance,
red beyond it or once refused (no sync comes by itself), the rule of the `in_sync_with_lake`
check (`platform_assets/status.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

GREEN, AMBER, RED = "green", "amber", "red"
_RANK = {GREEN: 0, AMBER: 1, RED: 2}
# Streamlit material icons (bundled with the app, so they render without an emoji font)
ICONS = {GREEN: ":material/check_circle:", AMBER: ":material/schedule:", RED: ":material/error:"}


def colour(age: timedelta | None, warn: timedelta, sla: timedelta) -> str:
    """green while age <= warn, amber while age <= sla, red beyond it or when unknown (None)."""
    if age is None:
        return RED
    if age > sla:
        return RED
    if age > warn:
        return AMBER
    return GREEN


def worst(colours: Iterable[str]) -> str:
    """The worst of several colours (a page reading two tables is as fresh as the older)."""
    colours = list(colours)
    return max(colours, key=_RANK.__getitem__) if colours else RED


def human_age(age: timedelta | None) -> str:
    """`42 s`, `17 min`, `5.2 h`, `3.1 d` (negative ages, clock skew, count as 0)."""
    if age is None:
        return "unknown"
    s = max(0.0, age.total_seconds())
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def lag_colour(lag: timedelta, tolerance: timedelta, waiting: str = "pending") -> str:
    """amber while the lake has been ahead for less than the lag tolerance and a sync is coming,
    red beyond it or when its sync was refused."""
    return AMBER if lag < tolerance and waiting != "refused" else RED


@dataclass(frozen=True)
class Badge:
    table: str
    colour: str
    lake_version: str | None
    data_age: timedelta | None  # now - when the version was built (platform-vouched)
    sync_age: timedelta | None  # now - loaded_at (when RDS swapped it in)
    rows: int | None
    warn: timedelta
    sla: timedelta
    problem: str | None = None  # the copy is not what the ledger recorded (damaged by hand)
    ahead: dict | None = None  # the lake holds a newer state: lake_version, since, lag, waiting

    @property
    def text(self) -> str:
        if self.problem:
            return (
                f"{self.colour.upper()} · {self.problem}: the data shown may be incomplete "
                "until the platform's next sync repairs it"
            )
        if self.lake_version is None:
            return (
                f"{self.colour.upper()} · gold.{self.table}: never synced to the serving "
                "database (no ledger row)"
            )
        text = (
            f"{self.colour.upper()} · gold.{self.table} shows lake version "
            f"{self.lake_version} · built {human_age(self.data_age)} ago, synced "
            f"{human_age(self.sync_age)} ago · {self.rows:,} rows · "
            f"warn > {human_age(self.warn)}, SLA {human_age(self.sla)}"
        )
        return text + (f" · {lake_ahead_text(self.ahead)}" if self.ahead else "")


def lake_ahead_text(ahead: dict) -> str:
    """`the lake holds a newer state X since 12:00:03 UTC (4 min): sync pending|refused: ...`"""
    why = ahead["waiting"]
    if ahead.get("reason"):
        why = f"{why}: {ahead['reason']}; no sync {ahead['until']}"
    return (
        f"the lake holds a newer state ({ahead['lake_version']}) since "
        f"{ahead['since']:%Y-%m-%d %H:%M:%S} UTC ({human_age(ahead['lag'])}): sync {why}"
    )


def make_badge(
    table: str,
    row: dict | None,
    warn: timedelta,
    sla: timedelta,
    now: datetime | None = None,
    tolerance: timedelta | None = None,
) -> Badge:
    """A badge from one ledger row (dict with lake_version, row_count, lake_created_at,
    loaded_at, and as `dashboard.data.badge_rows` adds them: built_at, copy_problem, ahead), or
    None when the table has never been synced. `tolerance`: the spec's lag tolerance."""
    now = now or datetime.now(UTC)
    if row is None:
        return Badge(table, RED, None, None, None, None, warn, sla)
    data_age = now - (row.get("built_at") or row["lake_created_at"])
    sync_age = now - row["loaded_at"]
    problem = row.get("copy_problem")
    ahead = row.get("ahead")
    shade = colour(data_age, warn, sla)
    if ahead and tolerance is not None:
        shade = worst([shade, lag_colour(ahead["lag"], tolerance, ahead.get("waiting", "pending"))])
    return Badge(
        table,
        RED if problem else shade,
        row["lake_version"],
        data_age,
        sync_age,
        int(row["row_count"]),
        warn,
        sla,
        problem,
        ahead,
    )
