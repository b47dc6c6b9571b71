"""The RDS asset's checks in a run: a sync's judged from the facts the run carries
(`SyncRun`), a check-only run's from the copy read under the table's sync lock.
"""

import contextlib
from collections.abc import Collection

import dagster as dg
import psycopg

from platform_assets import copy_checks, insync, insync_check
from platform_assets import status as table_status
from platform_assets.keys import rds_key
from platform_assets.lake.tables import GoldLake
from platform_assets.serving import snapshot
from platform_assets.serving.ownership import Deployment
from platform_assets.serving.protocol import SyncRun
from platform_assets.specs import GOLD_TABLES, GoldTableSpec
from resources.serving_db import ServingDatabase
from resources.sql_engine import SqlEngine


def check_only_results(
    spec: GoldTableSpec,
    gold: GoldLake,
    engine: SqlEngine,
    db: ServingDatabase,
    conn: psycopg.Connection,
    selected: Collection[str],
) -> tuple[list[dg.AssetCheckResult], table_status.RdsFacts]:
    """The RDS checks of the copy as it is (the schedule's check-only run, or a sync's whose
    copy another sync replaced before its checks), under the table's sync lock (shared): a
    sync publishing meanwhile waits. The lake is read under the lock, so a sync that published
    just before is judged, not missed; row count and fingerprint scan the copy and judge it
    against the version the ledger says it holds."""
    key = rds_key(spec.name)
    with conn.transaction():
        copy_checks.hold_sync_lock(conn, spec.name, db.sync_lock_wait_s)
        snap, fault = snapshot.take_or_fault(spec, gold, engine)
        facts = table_status.read_rds_facts(conn, [spec.name], Deployment.of(db, gold.storage))
        held, _ = facts.ledger.get(spec.name, (None, {}))
        rds_rows = table_status.live_row_count(conn, spec.name)
        if fault is not None:
            st = insync.faulted(spec, facts, fault, rds_rows)
        else:
            state, rows = (snap.state, snap.rows) if snap else (None, None)
            st = insync.evaluate(spec, state, facts, rows, rds_rows)
        checks = []
        if "in_sync_with_lake" in selected:
            checks.append(insync_check.check_result(spec, gold, snap, facts, st))
        checks += copy_checks.judge_copy(
            conn, spec, key, held, rds_rows, db, selected, _budget_tables(spec), snap
        )
    return checks, facts


def sync_results(
    spec: GoldTableSpec,
    gold: GoldLake,
    engine: SqlEngine,
    db: ServingDatabase,
    selected: Collection[str],
    run: SyncRun,
) -> tuple[list[dg.AssetCheckResult], table_status.RdsFacts]:
    """A sync run's RDS checks, judged from its facts under the table's sync lock, with nothing
    published since the run's own publish (or its read, when it found the copy in sync): the
    copy's ledger rows and catalog read once after the publish, the lake snapshot it loaded,
    and the checksums staging verified. The live copy is scanned only for units this run did
    not verify (all of them when nothing was loaded); its rows are counted by that same scan.
    When another sync published in the moment between the run's publish and its checks
    (`run.replaced`), its facts no longer describe the copy: the copy is judged as it is."""
    if run.replaced:  # (the lock held shared again: a no-op for this transaction)
        return check_only_results(spec, gold, engine, db, run.conn, selected)
    key, conn = rds_key(spec.name), run.conn
    me, published = run.me, run.published
    copies = {spec.name: published} if published is not None else None
    facts = table_status.read_rds_facts(conn, [spec.name], me, copies=copies)
    held, _ = facts.ledger.get(spec.name, (None, {}))
    verified = run.verified
    actual: copy_checks.Actual = copy_checks.SCAN
    if held is not None and held.checksums_current and verified.keys() == held.segments.keys():
        actual = verified  # every unit of the copy verified in staging by this run
    elif held is not None and {copy_checks.ROW_COUNT, copy_checks.FINGERPRINT} & set(selected):
        with contextlib.suppress(psycopg.errors.UndefinedColumn, psycopg.errors.DatatypeMismatch):
            actual = copy_checks.live_segments(conn, spec, held)  # the check names the column
    if actual is copy_checks.SCAN:
        rds_rows = table_status.live_row_count(conn, spec.name)
    else:
        rds_rows = None if actual is None else sum(n for n, _ in actual.values())
    st = insync.evaluate(spec, run.snap.state, facts, run.snap.rows, rds_rows)
    checks = []
    if "in_sync_with_lake" in selected:
        checks.append(insync_check.check_result(spec, gold, run.snap, facts, st))
    checks += copy_checks.judge_copy(
        conn, spec, key, held, rds_rows, db, selected, _budget_tables(spec), run.snap, actual
    )
    return checks, facts


def _budget_tables(spec: GoldTableSpec) -> list[str]:
    """The copies `fits_storage_budget` adds up: every declared table's (one database)."""
    return sorted({s.name for s in GOLD_TABLES} | {spec.name})
