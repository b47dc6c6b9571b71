"""Is each RDS copy in sync with the lake? One answer for checks, sensors, goldctl and dashboard.

The verdict compares the ledger row (what RDS holds) with the lake's current state (what is
stored at the table's location now). Lag is how long the lake has held something RDS lacks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import psycopg

from platform_assets.serving import ledger
from platform_assets.specs import GoldTableSpec
from resources.lake_tables import GoldLake, LakeTableState


@dataclass(frozen=True)
class TableStatus:
    table: str
    lake_version: str | None
    rds_version: str | None
    lake_rows: int | None
    rds_rows: int | None
    lake_created_at: str | None
    rds_loaded_at: str | None
    lag_seconds: float
    in_sync: bool
    severity: str  # "ok" | "warn" (behind, within tolerance) | "error"
    lag_tolerance_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def live_row_count(conn: psycopg.Connection, table: str) -> int | None:
    if conn.execute("SELECT to_regclass(%s)", (f"gold.{table}",)).fetchone()[0] is None:
        return None
    return conn.execute(f"SELECT count(*) FROM gold.{ledger.quote_ident(table)}").fetchone()[0]


def evaluate(
    spec: GoldTableSpec,
    state: LakeTableState | None,
    row: ledger.LedgerRow | None,
    rds_rows: int | None,
    now: datetime | None = None,
) -> TableStatus:
    now = now or datetime.now(UTC)
    tolerance = spec.lag_tolerance.total_seconds()
    in_sync = (
        state is not None
        and row is not None
        and rds_rows is not None
        and row.lake_token == state.token
        and row.lake_version == state.state_id
    )
    lag = 0.0 if in_sync or state is None else max(0.0, (now - state.created_at).total_seconds())
    if in_sync or state is None:
        severity = "ok" if state is not None or row is None else "warn"
    else:
        severity = "warn" if lag <= tolerance else "error"
    return TableStatus(
        table=spec.name,
        lake_version=state.state_id if state else None,
        rds_version=row.lake_version if row else None,
        lake_rows=_lake_rows(state),
        rds_rows=rds_rows,
        lake_created_at=state.created_at.isoformat() if state else None,
        rds_loaded_at=row.loaded_at.isoformat() if row else None,
        lag_seconds=round(lag, 1),
        in_sync=in_sync,
        severity=severity,
        lag_tolerance_seconds=tolerance,
    )


def _lake_rows(state: LakeTableState | None) -> int | None:
    if state is None:
        return None
    if not state.changed_outside:
        return state.manifest.row_count
    return None  # unknown until the files are read; callers that need it count footers


def table_status(
    spec: GoldTableSpec, lake: GoldLake, conn: psycopg.Connection, now: datetime | None = None
) -> TableStatus:
    state = lake.current_state(spec.name)
    rows = ledger.read_all(conn)
    status = evaluate(spec, state, rows.get(spec.name), live_row_count(conn, spec.name), now)
    if state is not None and status.lake_rows is None:
        counted = lake.storage.parquet_row_count(state.parquet_keys)
        status = TableStatus(**{**status.to_dict(), "lake_rows": counted})
    return status
