"""Which lake tables a SQL file reads: asset dependencies come from the SQL itself."""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from platform_assets.lake.tables import LAKE_LAYERS


def referenced_tables(sql: str) -> list[tuple[str, str]]:
    """(layer, table) pairs of the lake tables `sql` reads (CTE names excluded)."""
    found = {
        (t.db, t.name)
        for t in sqlglot.parse_one(sql, read="athena").find_all(exp.Table)
        if t.db in LAKE_LAYERS
    }
    return sorted(found)
