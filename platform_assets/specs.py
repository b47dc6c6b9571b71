"""The Gold tables, each declared once.

A Gold table is this spec entry plus `sql/gold/<name>.sql` (Athena dialect). The factory in
`gold_assets.py` builds from it the lake asset, the RDS asset, their checks and freshness
policies; sensors and `goldctl` iterate this list. Adding a table touches nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

SQL_DIR = Path(__file__).parent / "sql"

# The central freshness default; a spec overrides it by passing its own windows.
DEFAULT_FRESHNESS_SLA = timedelta(hours=26)
DEFAULT_FRESHNESS_WARN = timedelta(hours=24)


@dataclass(frozen=True)
class GoldTableSpec:
    name: str
    description: str
    primary_key: tuple[str, ...]
    segment_column: str  # a date column: fingerprints and partitions are per month of it
    indexes: tuple[tuple[str, ...], ...] = ()  # what the dashboard filters and sorts by
    freshness_sla: timedelta = DEFAULT_FRESHNESS_SLA  # last materialization older: fail (red)
    freshness_warn: timedelta = DEFAULT_FRESHNESS_WARN  # older than this: warn (amber)
    lag_tolerance: timedelta = timedelta(minutes=15)  # RDS behind the lake longer: ERROR
    max_shrink_ratio: float = 0.5  # refuse a load that loses more than this share of rows
    retention_days: float = 7.0  # old lake versions kept for rollback and slow readers
    partitioned: bool = False  # RDS copy partitioned by month of segment_column; only changed
    # months are reloaded (see serving/partitions.py)
    owners: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def sql_path(self) -> Path:
        return SQL_DIR / "gold" / f"{self.name}.sql"

    @property
    def sql(self) -> str:
        return self.sql_path.read_text()


GOLD_TABLES: tuple[GoldTableSpec, ...] = (
    GoldTableSpec(
        name="carrier_daily_performance",
        description="One row per flight date and carrier: volumes, cancellations, punctuality.",
        primary_key=("flight_date", "carrier"),
        segment_column="flight_date",
        indexes=(("carrier", "flight_date"),),
        partitioned=True,
    ),
    GoldTableSpec(
        name="route_monthly_performance",
        description="One row per month, origin, destination and carrier: volume and delay.",
        primary_key=("month", "origin", "dest", "carrier"),
        segment_column="month",
        # the dashboard's worst-routes list: by month, or by origin and month (when filtered)
        indexes=(
            ("month", "avg_arr_delay_min"),
            ("carrier", "month"),
            ("origin", "month", "avg_arr_delay_min"),
        ),
        partitioned=True,
    ),
    GoldTableSpec(
        name="airport_daily_weather",
        description="One row per flight date and origin airport: delays next to the day's weather.",
        primary_key=("flight_date", "origin"),
        segment_column="flight_date",
        indexes=(("origin", "flight_date"),),
    ),
)

GOLD_BY_NAME = {spec.name: spec for spec in GOLD_TABLES}
