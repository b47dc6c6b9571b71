"""Publishing: every staged unit of one sync goes live in one short transaction.

The live copy `gold.<table>` is a partitioned parent that stays put: views, grants and indexes
that users hang on it survive every sync. A publish detaches and drops the units it replaces,
evolves the parent's columns when the lake's changed (the parent then has no children, so that
is catalog work only), moves the staged children into `gold`, attaches them and writes the
ledger, all in one transaction: a reader sees the old units or the new ones, never two lake
versions in one query. Locks are asked for with a short `lock_timeout` and retried, so a long
dashboard query delays the publish instead of queueing every new reader behind it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg
from psycopg import errors, sql

from platform_assets.identifiers import trusted_sql
from platform_assets.serving import catalog, ledger, loader, pausepoints
from platform_assets.serving.catalog import Columns, CopyFacts, IndexDef
from platform_assets.serving.errors import LockBudgetExhausted, OwnershipRefused
from platform_assets.serving.locks import set_lock_timeout
from platform_assets.serving.names import SCHEMA, CopyNames, identifiers, unit_children
from platform_assets.serving.schema_change import SchemaChange
from platform_assets.serving.snapshot import LakeSnapshot
from platform_assets.serving.units import Staged, Unit

if TYPE_CHECKING:
    from platform_assets.specs import GoldTableSpec


def with_lock_budget(
    conn: psycopg.Connection,
    work: Callable[[psycopg.Connection], None],
    what: str,
    lock_timeout_ms: int,
    deadline_s: float = 120.0,
) -> int:
    """Run `work` in one transaction whose locks wait at most `lock_timeout_ms`, retrying with
    backoff until `deadline_s`; returns the number of attempts."""
    started, attempt = time.monotonic(), 0
    while True:
        attempt += 1
        try:
            with conn.transaction():
                set_lock_timeout(conn, lock_timeout_ms)
                work(conn)
            return attempt
        except (errors.LockNotAvailable, errors.DeadlockDetected):
            if time.monotonic() - started > deadline_s:
                raise LockBudgetExhausted(
                    f"{what} could not get its locks within {deadline_s:.0f}s ({attempt} "
                    "attempts): readers held the table"
                ) from None
            time.sleep(min(0.05 * attempt, 1.0) * (0.5 + random.random()))


@dataclass(frozen=True)
class Publication:
    spec: GoldTableSpec
    names: CopyNames
    snapshot: LakeSnapshot
    staged: Staged | None  # None: nothing to (re)load, only the ledger moves
    removed: tuple[str, ...]  # unit keys whose children leave the copy
    create_parent: bool  # no usable parent yet: (re)create it
    change: SchemaChange | None  # columns to evolve on the existing parent (None: same)
    index_defs: tuple[IndexDef, ...]  # the parent's indexes (for a new parent: the spec's)
    dashboard_role: str
    started: float  # time.monotonic() when the sync started
    extra_children: tuple[str, ...] = ()  # attached by hand: detached, left in place
    unit_keys: frozenset[str] = frozenset()  # the ledger's unit rows before (under the lock)
    attached: dict[str, str] = field(default_factory=dict)  # the copy's children before


def publish(
    conn: psycopg.Connection, pub: Publication, lock_timeout_ms: int, budget_s: float
) -> tuple[int, CopyFacts]:
    """Make the staged units live and write the ledger, atomically; returns the attempts and
    the copy's catalog facts as published (read in the publish transaction)."""
    name, published = pub.spec.name, []
    attempts = with_lock_budget(
        conn,
        lambda c: published.append(_publish(c, pub)),
        f"publishing gold.{name}",
        lock_timeout_ms,
        budget_s,
    )
    return attempts, published[-1]


def _publish(conn: psycopg.Connection, pub: Publication) -> CopyFacts:
    spec, live = pub.spec, pub.names.live
    staged = pub.staged.units if pub.staged else ()
    batch: list[sql.Composable] = []  # one round trip: locks held for catalog work only
    try:
        if pub.create_parent:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(live))
            _create_parent(conn, spec, live, pub.snapshot.columns, pub.index_defs)
            conn.execute(
                sql.SQL("GRANT SELECT ON {} TO {}").format(live, sql.Identifier(pub.dashboard_role))
            )
        else:
            attached = pub.attached  # read by this run under the sync lock
            removed = unit_children(spec.name, pub.removed).values()
            leaving = {u.child.name for u in staged} | {c.name for c in removed}
            gone = sorted(attached if pub.change else set(attached) & leaving)
            extra = sorted(set(pub.extra_children) & set(attached) - leaving)
            ids = identifiers([*gone, *extra])
            gone_ids, extra_ids = ids[: len(gone)], ids[len(gone) :]
            if gone:  # dropping a partition detaches it: one statement for all of them
                batch.append(sql.SQL("DROP TABLE {}").format(sql.SQL(", ").join(gone_ids)))
            for child in extra_ids:
                batch.append(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(live, child))
            if pub.change:
                batch += _evolve(live, pub.change)
            if batch:
                conn.execute(sql.SQL(";\n").join(batch))
                batch = []
            pausepoints.reached("publish")
        for unit in staged:
            batch += [
                sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                    unit.child.staged, sql.Identifier(SCHEMA)
                ),
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} {}").format(
                    live, unit.child.live, unit.bound
                ),
            ]
        if batch:
            conn.execute(sql.SQL(";\n").join(batch))
    except (errors.DependentObjectsStillExist, errors.FeatureNotSupported) as exc:
        shape = pub.change.describe() if pub.change else "no column changed"
        raise OwnershipRefused(
            f"gold.{spec.name} cannot take the lake's new shape ({shape}): "
            f"{exc.diag.message_primary}; {exc.diag.message_detail or ''} "
            "Drop or change the view, or set on_schema_change='fail', then sync again (goldctl "
            f"sync {spec.name}). The old copy keeps serving."
        ) from None
    return _write_ledger(conn, pub, staged)


def _create_parent(
    conn: psycopg.Connection,
    spec: GoldTableSpec,
    live: sql.Identifier,
    columns: Columns,
    index_defs: tuple[IndexDef, ...] | list[IndexDef],
) -> None:
    cols = loader.column_defs(columns, set(spec.primary_key))
    conn.execute(
        sql.SQL("CREATE TABLE {} ({}) PARTITION BY RANGE ({})").format(
            live, cols, sql.Identifier(spec.segment_column)
        )
    )
    for d in index_defs:
        if d.constraint == "p":  # body: "USING btree (a, b)"
            keys = trusted_sql(d.body[d.body.index("(") :])
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY {}").format(
                    live, sql.Identifier(d.name), keys
                )
            )
        else:
            unique = sql.SQL("UNIQUE " if d.unique else "")
            conn.execute(
                sql.SQL("CREATE {}INDEX {} ON {} {}").format(
                    unique, sql.Identifier(d.name), live, trusted_sql(d.body)
                )
            )


def _evolve(live: sql.Identifier, change: SchemaChange) -> list[sql.Composed]:
    """What gives the (then childless) parent the lake's columns: catalog work, no rewrite."""
    return (
        [
            sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(live, sql.Identifier(c))
            for c in change.dropped
        ]
        + [
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING NULL").format(
                live, sql.Identifier(c), trusted_sql(t)
            )
            for c, _, t in change.retyped
        ]
        + [
            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                live, sql.Identifier(c), trusted_sql(t)
            )
            for c, t in change.added
        ]
    )


def _write_ledger(conn: psycopg.Connection, pub: Publication, staged: Sequence[Unit]) -> CopyFacts:
    spec, snap = pub.spec, pub.snapshot
    seconds = time.monotonic() - pub.started
    rate = pub.staged.rows_per_s if pub.staged else None
    facts = catalog.copy_facts(conn, [spec.name])[spec.name]
    ledger.write(
        conn,
        *(
            ledger.published_row(
                spec.name,
                u.key,
                snap.state,
                u.expected,
                seconds,
                rate,
                facts.children[u.child.name],
            )
            for u in staged
        ),
    )
    keep = {u.key for u in staged}
    if not pub.create_parent and not pub.change:
        keep |= set(pub.unit_keys) - set(pub.removed)
    ledger.delete_units(conn, spec.name, keep)
    ledger.write(
        conn,
        ledger.published_row(
            spec.name,
            "",
            snap.state,
            snap.segments,
            seconds,
            rate,
            str(facts.oid),
            facts.columns,
            snap.columns,
        ),
    )
    ledger.clear_refusal(conn, spec.name)
    return facts
