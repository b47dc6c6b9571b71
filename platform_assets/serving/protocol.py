"""The sync protocol, lake Gold -> RDS (docs/DESIGN.md, "Sync protocol").

1. take one snapshot of the lake state (or use the run's); if the in-sync rule says the copy
   holds it, do nothing;
2. refuse an empty table, one that shrank beyond the spec, or a schema change the spec's
   policy (or a user's view) does not allow, unless forced; the old copy keeps serving;
3. plan the units to (re)load: all of them for a new copy or a new shape, else only those whose
   lake checksums changed or whose live child drifted from the ledger;
4. stage them (units.py: COPY, verify, indexes, ANALYZE) and publish them all in one short
   transaction that also writes the ledger (publish.py);
5. drop leftovers of crashed runs first, under the table's sync lock (locks.py).

Everything runs on the run's one connection (the COPY streams aside): the no-op under the sync
lock held shared there (`_prepare`), a load under the lock held for itself in a transaction
that commits with the publish (`_load`); the facts read under the shared lock are kept unless
a sync published in between, and the checks judged after the publish under the lock held
shared again judge from the run's facts unless a sync published since (the ledger's
`loaded_at` says, both times).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from platform_assets import insync
from platform_assets.lake import types as lake_types
from platform_assets.lake.tables import GoldLake
from platform_assets.serving import (
    catalog,
    checksum_upgrade,
    disk,
    indexes,
    ledger,
    locks,
    ownership,
    pausepoints,
    schema_change,
    snapshot,
)
from platform_assets.serving.errors import (
    GuardRefused,
    LockBudgetExhausted,
    NothingToSync,
    OwnershipRefused,
    PolicyRefused,
    SyncError,
    SyncRefused,
    SyncTransient,
    SyncTransientError,
    SyncUsageError,
    SyncVerificationError,
    classify,
)
from platform_assets.serving.names import CopyNames, copy_names
from platform_assets.serving.ownership import Deployment
from platform_assets.serving.publish import Publication, publish
from platform_assets.serving.snapshot import LakeSnapshot
from platform_assets.serving.units import (
    Staged,
    discard_staging,
    drop_staging,
    postgres_segments,
    stage,
    units_of,
)
from platform_assets.specs import GoldTableSpec
from resources.serving_db import ServingDatabase, ServingDbError

if TYPE_CHECKING:
    from platform_assets.serving.catalog import CopyFacts
    from resources.sql_engine import SqlEngine


__all__ = [  # the sync's failures are re-exported from their old home (errors.py is theirs now)
    "LockBudgetExhausted",
    "SyncError",
    "SyncRefused",
    "SyncResult",
    "SyncTransient",
    "SyncTransientError",
    "SyncVerificationError",
    "postgres_segments",
    "sync_table",
]


@dataclass
class SyncResult:
    table: str
    action: str  # "loaded" | "unchanged"
    lake_version: str
    row_count: int
    fingerprint: str
    seconds: float = 0.0
    load_seconds: float = 0.0
    rows_per_s: float | None = None
    swap_attempts: int = 0
    dropped_leftovers: list[str] = field(default_factory=list)
    partitions_reloaded: list[str] | None = None  # partitioned tables: the months reloaded
    indexes_created: list[str] = field(default_factory=list)  # declared after the copy was built
    schema_change: schema_change.SchemaChange | None = None
    repaired: str | None = None  # what the in-sync rule found wrong with the live copy
    judged: Any = None  # what `sync_table`'s `judge` answered under the lock (the caller's)

    def metadata(self) -> dict:
        meta = {
            "action": self.action,
            "lake_version": self.lake_version,
            "dagster/row_count": self.row_count,
            "dagster/table_name": f"gold.{self.table}",
            "fingerprint": self.fingerprint,
        }
        if self.action == "loaded":
            meta.update(
                {
                    "duration_s": round(self.seconds, 3),
                    "copy_seconds": round(self.load_seconds, 3),
                    "rows_per_s": round(self.rows_per_s or 0.0),
                    "swap_attempts": self.swap_attempts,
                }
            )
        if self.indexes_created:
            meta["indexes_created"] = ", ".join(self.indexes_created)
        if self.partitions_reloaded is not None:
            meta["partitions_reloaded"] = len(self.partitions_reloaded)
            meta["months_reloaded"] = ", ".join(self.partitions_reloaded[:24]) or "none"
        if self.schema_change:
            meta.update(self.schema_change.metadata())
        if self.repaired:
            meta["repaired"] = self.repaired
        return meta


@dataclass
class SyncRun:
    """One sync run and the facts it carries forward, each read once: the lake snapshot, the
    copy's ledger rows and catalog facts before the publish, the in-sync verdict on them, the
    units staged (their rows and checksums verified equal to the lake's), and the result.
    `judge` (the RDS asset's checks) reads it under the table's sync lock, after the publish."""

    spec: GoldTableSpec
    snap: LakeSnapshot
    conn: psycopg.Connection  # the run's one connection, holding the sync lock (COPY streams aside)
    names: CopyNames  # every name the run uses for the copy and its staging
    me: Deployment  # the deployment this run syncs for (it owns the copy)
    table_row: ledger.LedgerRow | None = None
    unit_rows: dict[str, ledger.LedgerRow] = field(default_factory=dict)
    facts: catalog.CopyFacts | None = None
    verdict: insync.Verdict | None = None
    staged: Staged | None = None
    result: SyncResult | None = None
    dropped: list[str] = field(default_factory=list)  # leftovers of crashed runs it dropped

    published: catalog.CopyFacts | None = None  # the catalog facts the publish left
    published_at: object = None  # the ledger's `loaded_at` the publish wrote
    reshaped: bool = False  # published a new parent or shape: its statistics are all new
    replaced: bool = False  # another sync published after this one, before its checks

    def read_copy(self) -> None:
        """The ledger rows and catalog facts of the copy, as they are now (one read each)."""
        name = self.spec.name
        self.table_row, self.unit_rows = ledger.read_everything(self.conn, [name]).get(
            name, (None, {})
        )
        self.facts = catalog.copy_facts(self.conn, [name]).get(name)

    @property
    def verified(self) -> dict[str, tuple[int, int]]:
        """The segments this run verified in staging (unit by unit), equal to the lake's."""
        units = self.staged.units if self.staged else ()
        return {k: v for u in units for k, v in u.expected.items()}


def sync_table(
    spec: GoldTableSpec,
    lake: GoldLake,
    engine: SqlEngine,
    db: ServingDatabase,
    force: bool = False,
    log: Callable[[str], None] = print,
    months: list[str] | None = None,
    snap: LakeSnapshot | None = None,
    still_wanted: Callable[[], None] | None = None,
    conn: psycopg.Connection | None = None,
    judge: Callable[[SyncRun], object] | None = None,
) -> SyncResult:
    """Run the protocol for one table. `months` (partitioned tables) reloads those months even
    when their checksums match: the RDS side of a backfill or a repair. `snap` is the run's
    lake snapshot (taken here when not given). `still_wanted` is called right before the
    publish transaction and raises `NotPublishing` when the sync's run is gone (a step process
    orphaned by a killed run worker must not publish after its run was failed). `conn` is the
    run's connection (autocommit; opened here when not given); `judge(run)` runs under the
    table's sync lock once the copy is published (or found in sync), its answer kept in
    `SyncResult.judged`.

    Every failure leaves as a `SyncError` (errors.py): a refusal is recorded in the ledger for
    every surface to show, a transient failure says a retry can succeed."""
    if months and not spec.partitioned:
        raise SyncUsageError(
            f"gold.{spec.name} is not partitioned: months cannot be reloaded alone", table=spec.name
        )
    started = time.monotonic()
    step = Step("reading the lake")
    state_id = snap.state.state_id if snap else "unreadable"
    try:
        snap = snap or snapshot.take(spec, lake, engine)
        if snap is None:
            raise NothingToSync(
                f"gold.{spec.name} has no published version in the lake yet", table=spec.name
            )
        state_id = snap.state.state_id
        step.now = "connecting"
        with contextlib.ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(db.connect(autocommit=True))
            ledger.bootstrap(conn, db.dashboard_role)
            run = SyncRun(spec, snap, conn, copy_names(spec.name), Deployment.of(db, lake.storage))
            settle = not force and not months  # the common no-op: done under the shared lock
            step.now = "waiting for the table's sync lock (shared)"
            result = _prepare(run, db, log, step, settle, judge)
            if result is not None:
                result.seconds = time.monotonic() - started
                return result
            if settle:
                pausepoints.reached("exclusive")  # read under the shared lock, not locked yet
            step.now = "waiting for the table's sync lock"
            result = _load(
                run,
                db,
                partial(_sync_locked, run, lake, db, force, months or [], log, step, still_wanted),
            )
            result.seconds = time.monotonic() - started
            result.dropped_leftovers = run.dropped
            run.result = result
            if run.reshaped:  # the new parent's statistics, after the lock's commit
                conn.execute(sql.SQL("ANALYZE {}").format(run.names.live))
            if judge is not None:
                step.now = None  # published: what fails now is no failure of the sync
                pausepoints.reached("judge")  # committed, the lock not held again yet
                with locks.shared(conn, spec.name, db.sync_lock_wait_s):
                    if ledger.loaded_at(conn, spec.name) != run.published_at:
                        run.replaced = True  # another sync published since: judge the copy
                    result.judged = judge(run)
            return result
    except Exception as exc:
        if step.now is None:
            raise
        failure = classify(exc, spec.name, step.now, _conninfo(db))
        if failure is None:
            raise  # a bug: its traceback says where
        if failure.recorded:
            _record_refusal(db, conn, spec.name, state_id, str(failure))
        elif failure.retryable:  # every surface says the sync is failing, and why
            _record_refusal(db, conn, spec.name, state_id, str(failure), "failing")
        if failure is exc:
            raise
        raise failure from None


def _prepare(
    run: SyncRun,
    db: ServingDatabase,
    log: Callable[[str], None],
    step: Step,
    settle: bool,
    judge: Callable[[SyncRun], object] | None,
) -> SyncResult | None:
    """On the run's one connection, under the table's sync lock held shared (no sync runs
    meanwhile, and a reader cannot take it: locks.py): claim the copy, drop leftovers of crashed
    runs, read the copy's facts once and judge them. In sync and `settle` (an unforced sync):
    nothing to load, and the checks are judged here too. Else None, the facts kept on `run`
    for the load, which takes the lock for itself."""
    spec, conn = run.spec, run.conn
    with locks.shared(conn, spec.name, db.sync_lock_wait_s):
        ownership.claim(conn, spec.name, run.me)  # or refuse
        _drop_leftovers(run, log)
        _judge(run)
        if not settle or not _nothing_to_load(run, force=False, months=[]):
            return None
        result = run.result = _nothing_to_do(run, log)
        result.dropped_leftovers = run.dropped
        if judge is not None:  # still under the lock: no sync publishes meanwhile
            step.now = None  # what fails now is no failure of the sync
            result.judged = judge(run)
        return result


def _load(run: SyncRun, db: ServingDatabase, work: Callable[[], SyncResult]) -> SyncResult:
    """The load (`work`, `_sync_locked`), in the sync lock's transaction on the run's connection
    (`locks.exclusive`).
    Its facts read under the shared lock are kept unless a sync published in between (the
    ledger's `loaded_at` says). Its work on the connection runs in a savepoint: a failure
    undoes it there, and staging is dropped while the lock is still held (the drop commits with
    the lock's end; the failure is raised after)."""
    spec, conn = run.spec, run.conn
    failure: BaseException | None = None
    with locks.exclusive(conn, run.names, db.sync_lock_wait_s):
        if ledger.loaded_at(conn, spec.name) != _loaded_at(run.table_row):
            run.verdict = None  # another sync published in between: read again
        try:
            with conn.transaction():
                result = work()
                run.published_at = ledger.loaded_at(conn, spec.name)
        except BaseException as exc:
            if conn.broken:
                raise
            failure = exc
            discard_staging(conn, run.names)
    if failure is not None:
        raise failure
    return result


def _drop_leftovers(run: SyncRun, log: Callable[[str], None]) -> None:
    """Under the table's sync lock (no sync runs): staging tables of the table are a crashed
    run's."""
    run.dropped = drop_staging(run.conn, run.names)
    if run.dropped:
        log(f"dropped leftovers of crashed runs: {', '.join(run.dropped)}")


def _loaded_at(row: ledger.LedgerRow | None) -> object:
    return row.loaded_at if row is not None else None


def _judge(run: SyncRun) -> insync.Verdict:
    """Read the copy's ledger rows and catalog facts (once) and judge them against the lake."""
    run.read_copy()
    state = run.snap.state
    run.verdict = insync.judge(
        run.spec.name, state.state_id, state.token, run.table_row, run.unit_rows, run.facts
    )
    return run.verdict


def _nothing_to_load(run: SyncRun, force: bool, months: list[str]) -> bool:
    """In sync, its checksums comparable with today's, and no reload asked for."""
    verdict, row = run.verdict, run.table_row
    if verdict is None or not verdict.in_sync or row is None or force or months:
        return False
    return not checksum_upgrade.outdated(row, run.unit_rows)


def _nothing_to_do(run: SyncRun, log: Callable[[str], None]) -> SyncResult:
    """The copy holds the snapshot: only the indexes its spec declares since are created."""
    spec, snap, row = run.spec, run.snap, run.table_row
    assert row is not None  # in sync: the ledger has its row
    log(f"gold.{spec.name} already holds lake version {snap.state.state_id}: nothing to do")
    created = indexes.ensure(run.conn, spec)
    if created:
        log(f"gold.{spec.name}: created the indexes its spec declares: {', '.join(created)}")
    return SyncResult(
        spec.name,
        "unchanged",
        snap.state.state_id,
        row.row_count,
        row.fingerprint,
        indexes_created=created,
    )


class Step:
    """What the sync is doing now, so a failure can say where it happened."""

    def __init__(self, now: str | None):
        self.now = now


def _conninfo(db: ServingDatabase) -> str:
    """The conninfo whose password a failure's message must not show ("" if unusable)."""
    try:
        return db.conninfo()
    except Exception:  # noqa: BLE001 - the settings are what failed; nothing secret to scrub
        return ""


def _record_refusal(
    db: ServingDatabase,
    conn: psycopg.Connection | None,
    table: str,
    lake_version: str,
    reason: str,
    kind: str = "refused",
) -> None:
    """Keep the reason where every surface reads it, on the run's connection while it works;
    best effort (the database may be down)."""
    with contextlib.suppress(psycopg.Error, ServingDbError), contextlib.ExitStack() as stack:
        if conn is None or conn.broken or conn.closed:
            conn = stack.enter_context(db.connect(autocommit=True))
        elif conn.info.transaction_status != TransactionStatus.IDLE:
            conn.rollback()  # a failure inside a transaction: what it did is undone
        ledger.bootstrap(conn, db.dashboard_role)
        ledger.record_refusal(conn, table, lake_version, reason, kind)


def _sync_locked(
    run: SyncRun,
    lake: GoldLake,
    db: ServingDatabase,
    force: bool,
    months: list[str],
    log: Callable[[str], None],
    step: Step,
    still_wanted: Callable[[], None] | None,
) -> SyncResult:
    spec, snap, conn = run.spec, run.snap, run.conn
    verdict = run.verdict or _judge(run)  # read under the shared lock, or now
    table_row, unit_rows, facts = run.table_row, run.unit_rows, run.facts
    outdated = checksum_upgrade.outdated(table_row, unit_rows)
    if outdated and table_row is not None and not verdict.copy_drifted:
        same, differ = checksum_upgrade.upgrade(
            conn, spec, snap, table_row, unit_rows, verdict.in_sync
        )
        log(
            f"gold.{spec.name}: ledger checksums of an older fingerprint version brought to "
            f"today's for {len(same)} unit(s) equal to the lake (no data copied); "
            f"{len(differ)} differ and reload"
        )
        run.read_copy()
        table_row, unit_rows = run.table_row, run.unit_rows
        outdated = checksum_upgrade.outdated(table_row, unit_rows)
    if _nothing_to_load(run, force, months):
        return _nothing_to_do(run, log)
    if verdict.copy_drifted:
        log(f"repairing: {verdict.reason}")
    _guard(spec, snap.rows, table_row, force)
    lake_units = units_of(spec, snap.segments)
    unknown = set(months) - set(lake_units)
    if unknown:
        raise SyncUsageError(
            f"gold.{spec.name} has no lake data for month(s) {', '.join(sorted(unknown))}; "
            f"months look like {min(lake_units, default='2013-01')}",
            table=spec.name,
        )

    usable = (  # the parent the ledger recorded, in the layout the spec asks for
        facts is not None
        and facts.relkind == "p"
        and facts.partition_column == spec.segment_column
        and table_row is not None
        and table_row.relation_id == str(facts.oid)
    )
    change = None
    if usable and facts is not None and table_row is not None:  # (usable implies both)
        change = schema_change.diff(facts.columns, snap.columns)
        _check_schema_policy(spec, table_row, facts, snap, change)
        _check_views(conn, spec, change)
        dropped = set(change.dropped) if change else set()
        index_defs = [d for d in catalog.parent_indexes(conn, facts) if not d.columns & dropped]
    else:
        if facts is not None:
            _check_no_views(conn, spec, facts)
        index_defs = indexes.spec_index_defs(spec)
    _check_spec_columns(spec, snap)

    if not usable or change:
        load = list(lake_units)
    else:
        expected = {key: unit.expected for key, unit in lake_units.items()}
        reload = {*months, *verdict.drifted_units, *ledger.stale_units(unit_rows, expected)}
        load = [key for key in lake_units if force or key in reload]
    removed = tuple(sorted(set(unit_rows) - set(lake_units))) if usable else ()
    partitioned = spec.partitioned
    if partitioned:
        log(f"gold.{spec.name}: {len(load)} of {len(lake_units)} month(s) to reload")
    staged = None
    if load:
        step.now = "measuring the room on the serving database's volume"
        units = [lake_units[k] for k in sorted(load)]
        disk.require_room(conn, db.storage_gb, run.names, units, snap.columns)
        step.now = f"COPY and verification of {len(load)} unit(s)"
        staged = run.staged = stage(
            conn,
            db.conninfo(),
            spec,
            run.names,
            [lake_units[k] for k in sorted(load)],
            snap.dataset(lake),
            snap.schema,
            snap.columns,
            index_defs,
            log,
        )
    pub = Publication(
        spec=spec,
        names=run.names,
        snapshot=snap,
        staged=staged,
        removed=removed,
        create_parent=not usable,
        change=change,
        index_defs=tuple(index_defs),
        dashboard_role=db.dashboard_role,
        started=time.monotonic(),
        extra_children=verdict.extra_children,
        unit_keys=frozenset(unit_rows),
        attached=dict(facts.children) if facts is not None else {},
    )
    step.now = "the publish transaction"
    if still_wanted is not None:  # the lock is this connection's: lost, the publish fails
        still_wanted()
    attempts, run.published = publish(conn, pub, db.lock_timeout_ms, db.lock_budget_s)
    run.reshaped = not usable or change is not None  # the parent's statistics: all new
    if change:
        log(f"gold.{spec.name} took the lake's new shape: {change.describe()}")
    log(f"gold.{spec.name} now serves lake version {snap.state.state_id} ({attempts} attempt(s))")
    return SyncResult(
        spec.name,
        "loaded",
        snap.state.state_id,
        snap.rows,
        snap.fingerprint,
        load_seconds=staged.copy_seconds if staged else 0.0,
        rows_per_s=staged.rows_per_s if staged else None,
        swap_attempts=attempts,
        partitions_reloaded=sorted(load) if partitioned else None,
        schema_change=change,
        repaired=verdict.reason if verdict.copy_drifted else None,
    )


def _guard(spec: GoldTableSpec, rows: int, current: ledger.LedgerRow | None, force: bool) -> None:
    previous = current.row_count if current else None
    numbers = {
        "lake_rows": rows,
        "serving_rows": previous,
        "max_shrink_ratio": spec.max_shrink_ratio,
    }
    if force:
        return
    if rows == 0:
        raise GuardRefused(
            f"refusing to publish gold.{spec.name}: the lake table is empty "
            f"(RDS keeps serving {previous if previous is not None else 'nothing'} rows; "
            "re-run with force to publish it anyway)",
            numbers,
        )
    if previous and rows < previous * (1 - spec.max_shrink_ratio):
        raise GuardRefused(
            f"refusing to publish gold.{spec.name}: it would shrink from {previous} to {rows} rows "
            f"(more than {spec.max_shrink_ratio:.0%}); RDS keeps serving the old copy "
            "(re-run with force to publish it anyway)",
            numbers,
        )


def _check_schema_policy(
    spec: GoldTableSpec,
    table_row: ledger.LedgerRow,
    facts: CopyFacts,
    snap: LakeSnapshot,
    change: schema_change.SchemaChange | None,
) -> None:
    """`fail` refuses a change of the lake's columns; repairing a copy altered by hand is no
    schema change (the lake still has the columns the ledger published)."""
    if spec.on_schema_change != "fail" or not change:
        return
    published = tuple(tuple(c) for c in table_row.columns) if table_row else ()
    lake_change = schema_change.diff(published or facts.columns, snap.columns)
    if lake_change:
        raise PolicyRefused(
            f"refusing to publish gold.{spec.name}: the lake's columns changed "
            f"({lake_change.describe()}) and its spec says on_schema_change='fail'; "
            "RDS keeps serving the old copy"
        )


def _check_views(
    conn: psycopg.Connection, spec: GoldTableSpec, change: schema_change.SchemaChange | None
) -> None:
    """A user's view that reads a column the lake dropped or retyped blocks the new shape."""
    if change is None:
        return
    touched = set(change.dropped) | {c for c, _, _ in change.retyped}
    if not touched:
        return
    blocking = {
        view: sorted(cols & touched)
        for view, cols in catalog.dependent_views(conn, spec.name).items()
        if cols & touched
    }
    if blocking:
        views = "; ".join(f"view {v} reads {', '.join(c)}" for v, c in sorted(blocking.items()))
        raise OwnershipRefused(
            f"refusing to publish gold.{spec.name}: the lake {change.describe()}, but {views}. "
            "Drop or change the view (or the lake table), then sync again (goldctl sync "
            f"{spec.name}); RDS keeps serving the old copy"
        )


def _check_no_views(conn: psycopg.Connection, spec: GoldTableSpec, facts: CopyFacts) -> None:
    """Re-creating the copy (an older layout) would drop the views on it: refuse, naming them."""
    views = sorted(catalog.dependent_views(conn, spec.name))
    if views:
        raise OwnershipRefused(
            f"refusing to re-create gold.{spec.name} (it is not the table the platform "
            f"published, or has an older layout): view(s) {', '.join(views)} depend on it. Drop "
            "them, sync, and create them again; RDS keeps serving the old copy"
        )


def _check_spec_columns(spec: GoldTableSpec, snap: LakeSnapshot) -> None:
    """The lake must still have the columns the spec keys, partitions and indexes by, and no
    column name PostgreSQL would cut."""
    have = dict(snap.columns)
    too_long = lake_types.long_identifiers(have)
    if too_long:
        raise PolicyRefused(
            f"refusing to publish gold.{spec.name}: the lake table has column(s) "
            f"{', '.join(too_long)} longer than PostgreSQL's {lake_types.PG_IDENTIFIER_BYTES} "
            "bytes; RDS keeps serving the old copy",
            table=spec.name,
        )
    missing = sorted(set(spec.key_columns) - set(have))
    if missing:
        raise PolicyRefused(
            f"refusing to publish gold.{spec.name}: the lake table lacks column(s) "
            f"{', '.join(missing)} that its spec's primary key, segment column or indexes use"
        )
    if have[spec.segment_column] != "date":
        raise PolicyRefused(
            f"refusing to publish gold.{spec.name}: its segment column {spec.segment_column} "
            f"is {have[spec.segment_column]} in the lake; the copy is partitioned by it as a date"
        )
