"""The Gold tables, each declared once.

A Gold table is this spec entry plus `sql/gold/<name>.sql` (Athena dialect). The factory in
`gold_assets/` builds from it the lake asset, the RDS asset, their checks and freshness
policies; sensors and `goldctl` iterate this list. Adding a table touches nothing else.

`GOLD_EXTRA_SPECS=<module>` adds the `GOLD_TABLES` of another importable module (its specs set
`sql_dir`): Gold tables declared outside this package, e.g. the generated ones of
benchmarks/many_tables.py. The platform's code has no other branch for them.
"""

from __future__ import annotations

import importlib
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

SQL_DIR = Path(__file__).parent / "sql"
EXTRA_SPECS_ENV = "GOLD_EXTRA_SPECS"

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
    partitioned: bool = False  # RDS copy has one partition per month of segment_column; only
    # changed months are reloaded (see serving/units.py)
    on_schema_change: Literal["evolve", "fail"] = "evolve"  # when the lake's columns change:
    # publish the new shape, or refuse (naming the columns) and keep serving the old copy
    owners: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    sql_dir: Path | None = None  # holds gold/<name>.sql; None: SQL_DIR, read when used (tests
    # point it at an edited copy), another folder for specs declared outside
    key_columns: frozenset[str] = field(init=False, repr=False, compare=False)
    """Columns the copy cannot do without: primary key, segment column, indexed columns (known
    when the spec is declared, not worked out by each sync)."""

    def __post_init__(self) -> None:
        keys = {*self.primary_key, self.segment_column, *(c for i in self.indexes for c in i)}
        object.__setattr__(self, "key_columns", frozenset(keys))

    @property
    def sql_path(self) -> Path:
        return (self.sql_dir or SQL_DIR) / "gold" / f"{self.name}.sql"

    @property
    def sql(self) -> str:
        return self.sql_path.read_text()

    @cached_property
    def output_columns(self) -> list[str]:
        """The columns the Gold SQL selects (read from the SQL, Athena/Trino dialect)."""
        import sqlglot  # on first use: goldctl's fast commands never parse SQL
        from sqlglot import exp

        tree = sqlglot.parse_one(self.sql, read="trino")
        return tree.named_selects if isinstance(tree, exp.Query) else []

    def validate(self) -> None:
        """Fail at definition time, naming the spec, when its keys do not fit its SQL."""
        if self.on_schema_change not in ("evolve", "fail"):
            raise ValueError(
                f"GoldTableSpec {self.name}: on_schema_change={self.on_schema_change!r}, "
                "expected 'evolve' or 'fail'"
            )
        if self.segment_column not in self.primary_key:
            raise ValueError(
                f"GoldTableSpec {self.name}: the primary key {self.primary_key} must include the "
                f"segment column {self.segment_column!r} (the copy is partitioned by it)"
            )
        from platform_assets.lake.types import PG_IDENTIFIER_BYTES, long_identifiers

        selected = set(self.output_columns)
        too_long = long_identifiers(self.output_columns)
        if too_long:
            raise ValueError(
                f"GoldTableSpec {self.name}: {self.sql_path.name} selects column(s) "
                f"{', '.join(too_long)} longer than PostgreSQL's {PG_IDENTIFIER_BYTES} bytes; "
                "rename them (PostgreSQL would cut the name and the copy would not match)"
            )
        if "*" in selected:
            return  # SELECT *: the columns are only known once built
        for what, cols in [
            ("primary key", self.primary_key),
            ("segment column", [self.segment_column]),
        ] + [(f"index {tuple(i)}", i) for i in self.indexes]:
            missing = [c for c in cols if c not in selected]
            if missing:
                raise ValueError(
                    f"GoldTableSpec {self.name}: its {what} uses column(s) "
                    f"{', '.join(missing)} that {self.sql_path.name} does not select "
                    f"(it selects {', '.join(self.output_columns)})"
                )


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


def extra_specs(module_name: str | None) -> tuple[GoldTableSpec, ...]:
    """The `GOLD_TABLES` of `module_name` (the `GOLD_EXTRA_SPECS` setting), checked."""
    if not module_name:
        return ()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{EXTRA_SPECS_ENV}={module_name}: cannot import it ({exc})") from None
    found: tuple[object, ...] = tuple(getattr(module, "GOLD_TABLES", ()))
    specs = tuple(s for s in found if isinstance(s, GoldTableSpec))
    if not specs or len(specs) < len(found):
        raise ValueError(
            f"{EXTRA_SPECS_ENV}={module_name}: the module needs GOLD_TABLES, a tuple of "
            "GoldTableSpec"
        )
    return specs


GOLD_TABLES = GOLD_TABLES + extra_specs(os.environ.get(EXTRA_SPECS_ENV))
_twice = sorted(name for name, n in Counter(s.name for s in GOLD_TABLES).items() if n > 1)
if _twice:
    raise ValueError(f"Gold table(s) declared twice: {', '.join(_twice)} ({EXTRA_SPECS_ENV})")
GOLD_BY_NAME = {spec.name: spec for spec in GOLD_TABLES}
