"""What the lake engine's statements cost, priced the way Athena bills them.

Athena bills each query's scanned bytes rounded up to the next MB with a 10 MB minimum; DDL and
statements that scan nothing are free. The price is `ATHENA_USD_PER_TB` (default 5), TB = 2^40
bytes as in AWS's own examples. DuckDB reports no scanned bytes, so a local build shows null, not
a cost of zero that was never measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from resources.sql_engine import SqlEngine

MB = 2**20
TB = 2**40
MIN_BILLED_BYTES = 10 * MB


def billed_bytes(scanned: int) -> int:
    if scanned <= 0:
        return 0
    return max(MIN_BILLED_BYTES, math.ceil(scanned / MB) * MB)


def cost_usd(scanned: Sequence[int], usd_per_tb: float) -> float:
    return sum(billed_bytes(n) for n in scanned) / TB * usd_per_tb


def scan_metadata(engine: SqlEngine, since: int) -> dict[str, Any]:
    """Scanned bytes and their price for the statements `engine` ran after the `since`-th."""
    stats = engine.statements_run()[since:]
    scanned = [s.data_scanned_bytes for s in stats if s.data_scanned_bytes is not None]
    if not stats or len(scanned) < len(stats):
        return {
            "athena_scanned_bytes": dg.MetadataValue.null(),
            "athena_cost_usd": dg.MetadataValue.null(),
        }
    usd_per_tb = engine.price_per_tb()
    return {
        "athena_scanned_bytes": sum(scanned),
        "athena_billed_bytes": sum(billed_bytes(n) for n in scanned),
        "athena_cost_usd": dg.MetadataValue.float(round(cost_usd(scanned, usd_per_tb), 6)),
        "athena_usd_per_tb": dg.MetadataValue.float(usd_per_tb),
        "athena_statements": len(stats),
    }
