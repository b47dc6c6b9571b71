"""Steady ticks: `lake_change_sensor` looks closely only at tables whose situation changed.

Asking the instance, per table and tick, what it last recorded (the copy's materialization, the
in-sync check's history, the months' partitions) is most of a tick once there are hundreds of
Gold tables (benchmarks/many_tables.py). A table keeps its last look's outcome for a tick when
all of these hold, so what that look recorded is still what the UI owes:

- it was in sync then and is in sync now, with the same lake state and the same RDS facts (the
  ledger's row, the copy's catalog facts, any refusal);
- no run touched it since (one query a tick: runs updated since the last tick, by their asset
  and check selections; a run without a selection touches every table);
- that look is less than `FULL_LOOK_S` old, which bounds what only the instance can know
  changed (a wiped asset history) to minutes.

A table out of sync is looked at every tick: its lag's severity and its retry wait change with
time alone. The cursor keeps what `lake_change_sensor` saw before (`seen`: lake states it
recorded) next to these looks.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.storage.dagster_run import RunsFilter

if TYPE_CHECKING:
    from platform_assets.insync import Verdict
    from platform_assets.lake.tables import LakeTableState
    from platform_assets.status import RdsFacts


FULL_LOOK_S = 300.0
RUN_SLACK_S = 60.0  # runs updated this long before the last tick count too (commit order)


def _table_of(key: dg.AssetKey) -> str | None:
    path = key.path
    return path[-1] if len(path) == 3 and path[1] == "gold" else None


def _rds_mark(rds: RdsFacts, table: str) -> str:
    """What RDS says about the table, as one comparable string."""
    row, units = rds.ledger.get(table, (None, {}))
    held = (row.lake_version, str(row.loaded_at), row.fingerprint, len(units)) if row else None
    return repr((held, rds.copies.get(table), rds.refusals.get(table)))


@dataclass
class Cursor:
    seen: dict[str, str] = field(default_factory=dict)  # table -> lake state recorded
    looks: dict[str, list] = field(default_factory=dict)  # table -> [lake, rds mark, time]
    tick_at: float | None = None
    _rds: RdsFacts | None = None
    _now: float = 0.0

    @classmethod
    def load(cls, text: str | None) -> Cursor:
        data = json.loads(text) if text else {}
        if "seen" not in data:  # the cursor before steady ticks: only the lake states seen
            return cls(seen=data)
        return cls(seen=data["seen"], looks=data.get("looks", {}), tick_at=data.get("tick_at"))

    def dump(self) -> str:
        return json.dumps({"seen": self.seen, "looks": self.looks, "tick_at": self._now})

    def start_tick(
        self, instance: dg.DagsterInstance, tables: list[str], rds: RdsFacts
    ) -> set[str]:
        """The tables to look at closely this tick (whatever their lake state says)."""
        self._rds, self._now = rds, time.time()
        touched = self._touched_by_runs(instance, tables)
        return {
            t
            for t in tables
            if t in touched
            or t not in self.looks
            or self.looks[t][1] != _rds_mark(rds, t)
            or self._now - self.looks[t][2] > FULL_LOOK_S
        }

    def _touched_by_runs(self, instance: dg.DagsterInstance, tables: list[str]) -> set[str]:
        if self.tick_at is None:
            return set(tables)
        since = datetime.fromtimestamp(self.tick_at - RUN_SLACK_S, UTC)
        touched: set[str] = set()
        for record in instance.get_run_records(filters=RunsFilter(updated_after=since)):
            run = record.dagster_run
            if run.asset_selection is None and run.asset_check_selection is None:
                return set(tables)  # a job run without a selection: it may touch any table
            keys = [
                *(run.asset_selection or ()),
                *(c.asset_key for c in run.asset_check_selection or ()),
            ]
            touched.update(t for t in map(_table_of, keys) if t)
        return touched

    def unchanged(
        self, table: str, state: LakeTableState, verdict: Verdict, look_at: set[str]
    ) -> bool:
        """In sync as at the last look, which found it in sync too: nothing new to record."""
        look = self.looks.get(table)
        return (
            table not in look_at
            and verdict.in_sync
            and look is not None
            and look[0] == [state.state_id, state.token]
        )

    def looked_at(self, table: str, state: LakeTableState, verdict: Verdict) -> None:
        if verdict.in_sync and self._rds is not None:  # (start_tick set it)
            self.looks[table] = [
                [state.state_id, state.token],
                _rds_mark(self._rds, table),
                self._now,
            ]
        else:
            self.forget(table)

    def forget(self, table: str) -> None:
        self.looks.pop(table, None)
