"""What the in-sync rule judges, read in one snapshot, and every table's status.

`read_rds_facts` reads the ledger, the catalog, refusals, lake heads and owners together;
`status_report` lists the lake and judges every table by the one rule with its numbers
(`insync.evaluate`): `goldctl status`, the RDS checks, the sensor and the dashboard read these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg import sql as pgsql

from platform_assets import insync
from platform_assets.lake.tables import GoldLake, LakeFault, LakeTableState
from platform_assets.serving import catalog, heads, ledger, names, orphans, ownership
from platform_assets.serving.catalog import CopyFacts
from platform_assets.serving.names import qualified
from platform_assets.specs import GoldTableSpec
from resources.serving_db import one_row


@dataclass(frozen=True)
class RdsFacts:
    """What RDS says about every copy, read in one snapshot (`ledger.one_snapshot`): the ledger,
    the catalog, refusals, lake heads and owners a publish changes together are never seen
    half-way, so no surface takes a publish for damage."""

    ledger: dict[str, tuple[ledger.LedgerRow, dict[str, ledger.LedgerRow]]]
    copies: dict[str, CopyFacts]
    refusals: dict[str, ledger.Refusal]
    heads: dict[str, heads.Head] = field(default_factory=dict)
    owners: dict[str, ownership.Owner] = field(default_factory=dict)
    orphans: list[orphans.Orphan] = field(default_factory=list)
    now: datetime | None = None  # the serving database's clock at the snapshot
    me: ownership.Deployment | None = None  # the deployment reading (None: judge no owner)

    def verdict(self, table: str, state: LakeTableState | None) -> insync.Verdict:
        owner = ownership.foreign_owner(self.owners.get(table), self.me)
        if owner is not None and self.me is not None:  # (a foreign owner implies `me`)
            reason = ownership.refusal(table, owner, self.me)
            return insync.Verdict(False, reason, owner=owner.deployment)
        row, units = self.ledger.get(table, (None, {}))
        return insync.judge(
            table,
            state.state_id if state else None,
            state.token if state else None,
            row,
            units,
            self.copies.get(table),
            self.refusals.get(table),
        )

    def copy_problem(self, table: str) -> str | None:
        """The copy side of the rule alone (what a reader without lake access can judge): what
        is wrong with the live copy against the ledger, or None."""
        row, units = self.ledger.get(table, (None, {}))
        if row is None:
            return None
        return insync.copy_drift(table, row, units, self.copies.get(table))[0]

    def lake_moved_at(self, table: str, state_id: str) -> datetime:
        """When the lake left the state the copy holds, for a lake now at `state_id` (the
        platform's first sight of it, bounded by the copy's last sync; `heads.lag_since`)."""
        now = self.now or datetime.now(UTC)
        head = self.heads.get(table)
        row, _ = self.ledger.get(table, (None, {}))
        current = head if head is not None and head.state_id == state_id else None
        return heads.lag_since(current, row.loaded_at if row else None, now)

    def waiting(self, table: str, state_id: str) -> str:
        """Why the sync of `state_id` has not landed: refused, failing, or pending."""
        refusal = self.refusals.get(table)
        if refusal is not None and refusal.lake_version == state_id:
            return refusal.kind
        return "pending"


def read_rds_facts(
    conn: psycopg.Connection,
    tables: list[str],
    me: ownership.Deployment | None = None,
    declared: list[str] | None = None,
    copies: dict[str, CopyFacts] | None = None,
) -> RdsFacts:
    """Every fact a verdict needs, in one snapshot; `declared` (the specs' tables) also finds
    the orphans. `copies`: the catalog facts a sync just published, under its lock (not read
    again)."""
    with ledger.one_snapshot(conn):
        owners = ownership.read_owners(conn)
        return RdsFacts(
            ledger.read_everything(conn, tables),
            catalog.copy_facts(conn, tables) if copies is None else copies,
            ledger.read_refusals(conn),
            heads.latest(conn),
            owners,
            orphans.find(conn, declared, owners, me) if declared is not None else [],
            one_row(conn.execute("SELECT now()"))[0],
            me,
        )


def live_row_count(conn: psycopg.Connection, table: str) -> int | None:
    return live_row_counts(conn, [table])[table]


COUNT_BATCH = 50  # tables counted by one query: their partitions' locks stay well within
# the server's lock table (max_locks_per_transaction x connections)


def live_row_counts(conn: psycopg.Connection, tables: list[str]) -> dict[str, int | None]:
    """Each copy's row count (None if missing): one query per COUNT_BATCH tables, not two per
    table (`goldctl status` at 300 tables)."""
    relations = [qualified(t) for t in tables]
    found = conn.execute(
        "SELECT n.i FROM unnest(%s::text[]) WITH ORDINALITY AS n(name, i) "
        "WHERE to_regclass(n.name) IS NOT NULL",
        (relations,),
    ).fetchall()
    counts: dict[str, int | None] = dict.fromkeys(tables)
    present = [tables[i - 1] for (i,) in found]
    for start in range(0, len(present), COUNT_BATCH):
        union = pgsql.SQL(" UNION ALL ").join(
            pgsql.SQL("SELECT {}, count(*) FROM {}").format(
                pgsql.Literal(n), names.identifier(present[n])
            )
            for n in range(start, min(start + COUNT_BATCH, len(present)))
        )
        for n, rows in conn.execute(union).fetchall():
            counts[present[n]] = rows
    return counts


def lake_row_count(lake: GoldLake, state: LakeTableState | None) -> int | None:
    """The manifest's count for published files, else counted (and checked) from the files'
    footers: a changed location with a bad file is a `LakeFault` naming it."""
    if state is None:
        return None
    if not state.changed_outside:
        return state.manifest.row_count
    return lake.read_footers(state)[1]


def status_report(
    specs: list[GoldTableSpec],
    lake: GoldLake,
    conn: psycopg.Connection,
    me: ownership.Deployment | None = None,
    declared: list[str] | None = None,
    seen_by: str = "goldctl",
) -> tuple[list[insync.TableStatus], RdsFacts]:
    """Every table's status (and the facts judged); a fault in one table's lake location is
    that table's status. The lake states listed are recorded as heads first (the lag clock)."""
    states: dict[str, LakeTableState | LakeFault | None] = {}
    for spec in specs:
        try:
            states[spec.name] = lake.current_state(spec.name)
        except LakeFault as fault:
            states[spec.name] = fault
    heads.record(conn, [s for s in states.values() if isinstance(s, LakeTableState)], seen_by)
    facts = read_rds_facts(conn, [s.name for s in specs], me, declared)
    counts = live_row_counts(conn, [s.name for s in specs])
    statuses = []
    for spec in specs:
        rds_rows = counts[spec.name]
        state = states[spec.name]
        try:
            if isinstance(state, LakeFault):
                raise state
            rows = lake_row_count(lake, state)
        except LakeFault as fault:
            statuses.append(insync.faulted(spec, facts, fault, rds_rows))
            continue
        statuses.append(insync.evaluate(spec, state, facts, rows, rds_rows))
    return statuses, facts


def table_statuses(
    specs: list[GoldTableSpec], lake: GoldLake, conn: psycopg.Connection
) -> list[insync.TableStatus]:
    return status_report(specs, lake, conn)[0]


def table_status(
    spec: GoldTableSpec, lake: GoldLake, conn: psycopg.Connection
) -> insync.TableStatus:
    return table_statuses([spec], lake, conn)[0]
