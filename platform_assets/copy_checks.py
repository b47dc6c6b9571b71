"""`row_count_matches` and `fingerprint_matches`: is the copy the version the ledger says it holds?

They judge the copy, not the lag (`in_sync_with_lake` judges the lag): a copy that merely holds
the previous lake version stays green, a copy changed by hand (DELETE, UPDATE, TRUNCATE, a
dropped month) turns red at once. The expected numbers are the ledger's, written in the publish
transaction; the checks read the ledger and the copy under the table's sync lock (shared), so a
sync publishing meanwhile waits and can never be judged half-way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from enum import Enum
from typing import TYPE_CHECKING, Final, Literal

import dagster as dg
import psycopg

from platform_assets.lake.fingerprint import Segments, differing_segments, fingerprint
from platform_assets.serving import footprint, locks
from platform_assets.serving.checksum_upgrade import held_schema
from platform_assets.serving.ledger import LedgerRow
from platform_assets.serving.names import qualified
from platform_assets.serving.units import postgres_segments

if TYPE_CHECKING:
    from platform_assets.serving.snapshot import LakeSnapshot
    from platform_assets.specs import GoldTableSpec
    from resources.dagster_resources import ServingDatabase


ROW_COUNT = "row_count_matches"
FINGERPRINT = "fingerprint_matches"


def hold_sync_lock(conn: psycopg.Connection, table: str, wait_s: float) -> None:
    """Inside a transaction: no sync of `table` publishes until it ends (shared with other
    checks, exclusive against the sync's own lock: serving/locks.py)."""
    locks.hold_shared(conn, table, wait_s)


def row_count(key: dg.AssetKey, row: LedgerRow | None, rds_rows: int | None) -> dg.AssetCheckResult:
    if row is None:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=ROW_COUNT,
            passed=rds_rows is None,
            description="no copy published yet: nothing to compare"
            if rds_rows is None
            else "a table the platform never published stands where the copy goes",
            metadata={"rds_rows": rds_rows},
        )
    passed = rds_rows == row.row_count
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=ROW_COUNT,
        passed=passed,
        description=f"the copy holds lake version {row.lake_version}"
        if passed
        else f"the copy is not lake version {row.lake_version} it claims to hold "
        "(changed by hand?)",
        metadata={
            "ledger_rows": row.row_count,
            "rds_rows": rds_rows,
            "rds_version": row.lake_version,
        },
    )


class _Read(Enum):
    SCAN = "scan"


SCAN: Final = _Read.SCAN  # fingerprint_check's `actual`: read the live copy now
Actual = Segments | Literal[_Read.SCAN] | None  # verified segments, SCAN, or no copy


def live_segments(conn: psycopg.Connection, spec: GoldTableSpec, row: LedgerRow) -> Segments | None:
    """The live copy's segment checksums, in the order the ledger's were computed (None: the
    copy is missing). Raises UndefinedColumn/DatatypeMismatch for columns altered by hand."""
    try:
        with conn.transaction():  # a savepoint: a failed read leaves the caller's lock held
            return postgres_segments(
                conn, qualified(spec.name), held_schema(row), spec.segment_column
            )
    except psycopg.errors.UndefinedTable:
        return None


def fingerprint_check(
    conn: psycopg.Connection,
    key: dg.AssetKey,
    spec: GoldTableSpec,
    row: LedgerRow | None,
    snap: LakeSnapshot | None = None,
    actual: Actual = SCAN,
) -> dg.AssetCheckResult:
    """`actual`: the copy's segments when the caller knows them (a sync run verified every unit
    it published), else SCAN."""
    if row is None:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=FINGERPRINT,
            passed=True,
            description="no copy published yet: nothing to compare",
        )
    expected = {k: (int(v[0]), int(v[1])) for k, v in row.segments.items()}
    if not row.checksums_current:  # an older fingerprint's: compare with the lake's own instead
        if snap is None or (snap.state.state_id, snap.state.token) != (
            row.lake_version,
            row.lake_token,
        ):
            return dg.AssetCheckResult(
                asset_key=key,
                check_name=FINGERPRINT,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"not verified: the ledger's checksums are of fingerprint version "
                f"{row.checksums}, and no lake checksums of version {row.lake_version} are at "
                "hand to compare with; the next sync recomputes them",
            )
        expected = dict(snap.segments)
    try:
        if actual is SCAN:
            actual = live_segments(conn, spec, row)
    except (psycopg.errors.UndefinedColumn, psycopg.errors.DatatypeMismatch) as exc:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=FINGERPRINT,
            passed=False,
            description=f"gold.{spec.name} columns were altered by hand: {exc}".splitlines()[0],
        )
    differing = differing_segments(expected, actual or {})
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=FINGERPRINT,
        passed=actual is not None and not differing,
        description="the copy is missing (dropped by hand?)" if actual is None else None,
        metadata={
            "ledger_fingerprint": row.fingerprint,
            "rds_fingerprint": fingerprint(actual) if actual is not None else "none",
            "rds_version": row.lake_version,
            "segments": len(expected),
            "differing_segments": ", ".join(differing[:50]) or "none",
        },
    )


def judge_copy(
    conn: psycopg.Connection,
    spec: GoldTableSpec,
    key: dg.AssetKey,
    held: LedgerRow | None,
    rds_rows: int | None,
    db: ServingDatabase,
    selected: Collection[str],
    tables: list[str],
    snap: LakeSnapshot | None = None,
    actual: Actual = SCAN,
) -> Iterator[dg.AssetCheckResult]:
    """The checks that judge the copy alone (not the lag), whoever runs them: a run, or
    `lake_change_sensor` after a run that failed before it could (`snap`: the run's lake
    snapshot, whose checksums stand in for a ledger's of an older fingerprint version;
    `actual`: the copy's segments when the run knows them, see `fingerprint_check`)."""
    if ROW_COUNT in selected:
        yield row_count(key, held, rds_rows)
    if FINGERPRINT in selected:
        yield fingerprint_check(conn, key, spec, held, snap, actual)
    if footprint.CHECK_NAME in selected:
        yield footprint.budget_check(conn, key, tables, db.storage_budget_gb, db.storage_gb)


def as_evaluation(
    result: dg.AssetCheckResult, by: str = "lake_change_sensor"
) -> dg.AssetCheckEvaluation:
    """The same judgement recorded without a run (by a sensor, or a run re-asserting it)."""
    if result.asset_key is None or result.check_name is None:
        raise ValueError("a check judged without a run must name its asset and check")
    return dg.AssetCheckEvaluation(
        asset_key=result.asset_key,
        check_name=result.check_name,
        passed=result.passed,
        severity=result.severity,
        description=result.description,
        metadata={**(result.metadata or {}), "evaluated_by": by},
    )
