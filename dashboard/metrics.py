"""KPI tiles and chart series from the Overview's one query (rows per day or per month).

The query returns sums and weights, not averages, so the period's figures are exact
aggregates of the rows (an average of daily averages would weigh a quiet day like a busy one).
"""

from __future__ import annotations

import math

import pandas as pd


def _ratio(num: float, den: float) -> float | None:
    """num / den of two of the period's totals, or None when there is no base (0 or NaN)."""
    return None if math.isnan(den) or den == 0 else num / den


def with_averages(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with `avg_dep_delay_min` / `avg_arr_delay_min` (where the query has the sums)."""
    out = rows.copy()
    for kind in ("dep", "arr"):
        if f"{kind}_delay_sum" in out:
            n = out[f"{kind}_delay_n"].astype("float64").where(lambda s: s > 0)
            out[f"avg_{kind}_delay_min"] = out[f"{kind}_delay_sum"].astype("float64") / n
    return out


def kpis(rows: pd.DataFrame) -> dict:
    """Totals of the period; a figure the rows cannot give (no such column) is absent."""
    total: dict[str, float] = rows.sum(numeric_only=True).to_dict()
    out: dict[str, float | None] = {
        "flights": int(total.get("flights", 0)),
        "cancelled": int(total.get("cancelled", 0)),
    }
    if "on_time_arrivals" in rows:
        out["on_time_rate"] = _ratio(total["on_time_arrivals"], total["departed"])
    for kind in ("dep", "arr"):
        if f"{kind}_delay_sum" in rows:
            out[f"avg_{kind}_delay_min"] = _ratio(
                total[f"{kind}_delay_sum"], total[f"{kind}_delay_n"]
            )
    return out
