"""`lake_change_sensor`: the RDS copies follow the lake, whoever changed it.

Each tick lists every Gold table's current location (one small LIST per table) and reads the
ledger and the copies' catalog facts (a few queries, no scan). A state Dagster did not produce
(a hand-run CTAS, an analyst's INSERT INTO, a manual upload) is recorded as a runless
materialization of the lake asset; every RDS copy that the in-sync rule finds out of sync (the
lake moved on, or the copy was dropped, truncated or altered by hand) gets a run request keyed
by episode: table, lake state and the lake head's id (`serving/heads.py`: a new one each time
the lake moves, also back to a state synced before), plus the copy's catalog facts for a
repair, so a rollback is synced again and nothing runs twice. Each tick records the heads it
lists (the lag clock), logs each orphan once and revokes the dashboard's reads of it, and
requests nothing for a copy another deployment owns or a state whose sync was refused. The same
tick records
what the UI should show on the RDS asset meanwhile (`copy_record`): the lag as a failing
`in_sync_with_lake` evaluation, and on a new instance the copies the ledger holds. It is never
silent: every tick logs per table what it decided and why, and records a change of decision on
the RDS asset (`decisions.py`).
"""

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES, DagsterRun, RunsFilter

from platform_assets import decisions, insync, retry_rule, steady
from platform_assets.active_runs import (
    MAX_RUNTIME_TAG,
    active_runs,
    past_deadline,
    sync_max_runtime_s,
)
from platform_assets.copy_record import (
    after_failed_run,
    copy_events,
    in_sync_now,
    last_metadata,
    record_in_sync,
)
from platform_assets.gold_assets.months import months_changes, months_partitions
from platform_assets.keys import lake_key, rds_key
from platform_assets.lake.tables import GOLD, GoldLake, LakeFault, LakeTableState
from platform_assets.serving import heads, ledger, orphans
from platform_assets.serving.ownership import Deployment
from platform_assets.specs import GOLD_BY_NAME, GOLD_TABLES, GoldTableSpec
from platform_assets.status import RdsFacts, lake_row_count, read_rds_facts
from resources.serving_db import ServingDatabase
from resources.storage import LakeStorage


def _run_key(table: str, state_id: str, verdict: insync.Verdict, rds: RdsFacts) -> str:
    """`sync:<table>:<lake state>@<episode>`: the episode is the lake head's id (a new one each
    time the lake moves, also back to a state synced before), so a rollback is synced again
    and a request is never duplicated. A damaged copy adds a digest of its catalog facts, so a
    copy damaged again after a repair gets a new run key."""
    head = rds.heads.get(table)
    episode = head.id if head is not None and head.state_id == state_id else 0
    key = f"sync:{table}:{state_id}@{episode}"
    if not verdict.copy_drifted:
        return key
    copy = rds.copies.get(table)
    text = repr((copy.oid, copy.columns, sorted(copy.children.items()))) if copy else "missing"
    return f"{key}:repair-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _months_requests(
    instance: dg.DagsterInstance, conn: psycopg.Connection, look_at: set[str]
) -> list:
    """Keep each reload-months job's partitions equal to the months RDS holds, also on a new
    instance (a fresh `dagster dev`) where no sync has run yet."""
    requests = []
    for spec in GOLD_TABLES:
        if not spec.partitioned or spec.name not in look_at:
            continue
        added, dropped = months_changes(instance, spec, conn)
        if added:
            requests.append(months_partitions(spec).build_add_request(added))
        if dropped:
            requests.append(months_partitions(spec).build_delete_request(dropped))
    return requests


# Every pass of the daemon's sensor loop, which comes every 5 s (its floor, not a setting): a
# minimum interval of 5 s itself skipped every pass whose tick came a moment early by the
# daemon's clock (elapsed 4.99 s < 5 s), so changes waited 10 s for a tick about half the time
# (benchmarks/staleness.py). Steady ticks keep a tick cheap at hundreds of tables.
INTERVAL_S = 4


@dg.sensor(
    name="lake_change_sensor",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[rds_key(spec.name) for spec in GOLD_TABLES],
    description="Refreshes RDS copies when their lake Gold table changes, in or outside Dagster.",
)
def lake_change_sensor(
    context: dg.SensorEvaluationContext, lake: LakeStorage, serving: ServingDatabase
) -> dg.SensorResult:
    gold = GoldLake(lake)
    cursor = steady.Cursor.load(context.cursor)
    names = [spec.name for spec in GOLD_TABLES]
    active = active_runs(context.instance)
    events, requests = [], []
    states = {}
    for spec in GOLD_TABLES:
        try:
            states[spec.name] = gold.current_state(spec.name)
        except LakeFault as fault:  # this table only: the others are looked at as usual
            states[spec.name] = fault
    me = Deployment.of(serving, lake)
    with serving.connect(autocommit=True) as conn:
        if not heads.exists(conn):
            ledger.bootstrap(conn, serving.dashboard_role)
        listed = [s for s in states.values() if s is not None and not isinstance(s, LakeFault)]
        heads.record(conn, listed, "lake_change_sensor")
        rds = read_rds_facts(conn, names, me, names)
        _report_orphans(context, conn, rds.orphans, serving.dashboard_role, names)
        touched = cursor.start_tick(context.instance, names, rds)
        partition_requests = _months_requests(context.instance, conn, touched)
        for spec in GOLD_TABLES:
            look = Look(context, gold, rds, active, cursor, touched, conn, serving, states)
            decision, table_events, request = look.at(spec)
            context.log.info(f"gold.{spec.name}: {decision.text}")  # every table, every tick
            events += table_events
            if not decision.steady:  # a steady table's last look recorded its decision
                events += decisions.record(context.instance, spec, decision)
            if request is not None:
                requests.append(request)

        def rejudge(table: str) -> dg.AssetCheckEvaluation | None:
            state = states[table]
            if state is None or isinstance(state, LakeFault):
                return None
            fresh = read_rds_facts(conn, names, me, names)
            return in_sync_now(context.instance, GOLD_BY_NAME[table], state, fresh)

        events = record_in_sync(context.instance, conn, rds, events, rejudge)
    return dg.SensorResult(
        run_requests=requests,
        asset_events=events,
        dynamic_partitions_requests=partition_requests,
        cursor=cursor.dump(),
    )


@dataclass
class Look:
    """One tick's look at one table: what it decided and why, the events it owes the UI, and a
    run request."""

    context: dg.SensorEvaluationContext
    gold: GoldLake
    rds: RdsFacts
    active: dict
    cursor: steady.Cursor
    touched: set[str]
    conn: psycopg.Connection
    serving: ServingDatabase
    states: dict  # table -> the lake state listed this tick (or its LakeFault)

    def at(self, spec: GoldTableSpec) -> tuple[decisions.Decision, list, dg.RunRequest | None]:
        cursor, context = self.cursor, self.context
        try:
            state = self.states.get(spec.name)
            if isinstance(state, LakeFault):
                raise state
            if state is None:
                text = "no published lake version yet"
                return decisions.Decision("no_lake_version", text), [], None
            building = self.active.get(lake_key(GOLD, spec.name))
            if building is not None and building.materializes:
                # its new lake version is not on the instance yet: it would look like an
                # outside change. Looked at once the run is over.
                cursor.forget(spec.name)
                text = f"run {building.run_id[:8]} is building it"
                return decisions.Decision("running", text), [], None
            events = _record_outside_change(context, self.gold, spec, state, cursor.seen)
        except LakeFault as fault:  # this table only: the others are looked at as usual
            cursor.forget(spec.name)
            text = f"lake unreadable ({fault}); its RDS copy keeps serving"
            return decisions.Decision("refused", text), [], None
        verdict = self.rds.verdict(spec.name, state)
        if cursor.unchanged(spec.name, state, verdict, self.touched):
            text = "in sync (as at the last look)"
            return decisions.Decision("in_sync", text, steady=True), events, None
        events += copy_events(context.instance, spec, state, self.rds, verdict)  # lag in the UI
        cursor.looked_at(spec.name, state, verdict)
        if verdict.in_sync:
            events += after_failed_run(context.instance, spec, self.rds, self.conn, self.serving)
            return decisions.Decision("in_sync", "in sync"), events, None
        syncing = self.active.get(rds_key(spec.name))
        if syncing is not None and syncing.materializes:
            text = f"out of sync ({verdict.reason}); run {syncing.run_id[:8]} is syncing it"
            return decisions.Decision("running", text), events, None
        if verdict.owner is not None:  # another deployment's copy: never requested
            return decisions.Decision("refused", verdict.reason), events, None
        refusal = self.rds.refusals.get(spec.name)
        if (
            refusal is not None
            and refusal.kind == "refused"
            and refusal.lake_version == state.state_id
            and not verdict.copy_drifted
        ):
            text = (
                f"refused because {refusal.reason}; not retried until the lake changes "
                "(or `goldctl sync --force`)"
            )
            return decisions.Decision("refused", text), events, None
        decision, request = _sync_request(context, self.conn, spec, state, self.rds, verdict)
        if request is not None and syncing is not None:  # a check-only run is judging the copy
            decision = decisions.Decision(
                decision.kind,
                f"{decision.text}; queued behind check run {syncing.run_id[:8]} (sync lock)",
            )
        return decision, events, request


def _record_outside_change(
    context: dg.SensorEvaluationContext,
    gold: GoldLake,
    spec: GoldTableSpec,
    state: LakeTableState,
    seen: dict,
) -> list:
    """A runless materialization of the lake asset for a state Dagster did not produce."""
    key = lake_key(GOLD, spec.name)
    if seen.get(spec.name) == state.state_id:
        return []
    first_look = spec.name not in seen
    if last_metadata(context.instance, key, "version") == state.state_id:
        seen[spec.name] = state.state_id
        return []
    rows = lake_row_count(gold, state)  # a bad file raises here, before the cursor moves
    seen[spec.name] = state.state_id
    how = "first seen by this instance" if first_look else "changed outside Dagster"
    context.log.info(f"gold.{spec.name} {how}: {state.state_id}")
    return [
        dg.AssetMaterialization(
            asset_key=key,
            description=f"Recorded by lake_change_sensor: {how}.",
            metadata={
                "version": state.state_id,
                "token": state.token,
                "files": len(state.parquet_keys),
                "dagster/row_count": rows,
                "changed_outside_dagster": state.changed_outside or not first_look,
            },
        )
    ]


def _sync_request(
    context: dg.SensorEvaluationContext,
    conn: psycopg.Connection,
    spec: GoldTableSpec,
    state: LakeTableState,
    rds: RdsFacts,
    verdict: insync.Verdict,
) -> tuple[decisions.Decision, dg.RunRequest | None]:
    """(decision, a sync run for a copy the in-sync rule finds out of sync or None); after a
    failed transient one, again with backoff (the same lake state's run key is used up), so the
    copy heals once the fault clears. A refused sync is never requested again for its state."""
    key = _run_key(spec.name, state.state_id, verdict, rds)
    episode = key.split("@", 1)[1].split(":", 1)[0]
    attempt, wait, last = _retry_plan(context.instance, spec.name, state.state_id, episode)
    if wait > 0 and last is not None:  # a wait is always for the failed `last`
        _record_backoff(conn, spec, state, rds, attempt, wait)
        until = datetime.fromtimestamp(time.time() + wait, UTC).strftime("%H:%M:%S")
        text = (
            f"out of sync ({verdict.reason}); backing off until {until} UTC: its last sync "
            f"failed (run {last.run_id[:8]}), attempt {attempt} then"
        )
        return decisions.Decision("backing_off", text), None
    if last is not None and last.status in IN_PROGRESS_RUN_STATUSES:
        text = (
            f"out of sync ({verdict.reason}); already requested: run {last.run_id[:8]} is "
            f"{last.status.value.lower()}"
        )
        return decisions.Decision("requested", text), None
    request = dg.RunRequest(
        run_key=key if attempt == 1 else f"{key}:attempt-{attempt}",
        asset_selection=[rds_key(spec.name)],
        tags={
            "gold/table": spec.name,
            "gold/lake_version": state.state_id,
            "gold/episode": episode,
            "gold/attempt": str(attempt),
            MAX_RUNTIME_TAG: str(int(sync_max_runtime_s())),  # run monitoring ends it after
        },
    )
    text = f"out of sync ({verdict.reason}); sync requested (attempt {attempt})"
    return decisions.Decision("requested", text), request


def _record_backoff(
    conn: psycopg.Connection,
    spec: GoldTableSpec,
    state: LakeTableState,
    rds: RdsFacts,
    attempt: int,
    wait: float,
) -> None:
    """The next attempt's time, where status, the check and the badge read why no sync came."""
    retry_at = datetime.now(UTC) + timedelta(seconds=wait)
    refusal = rds.refusals.get(spec.name)
    if refusal is None or refusal.lake_version != state.state_id or refusal.kind != "failing":
        reason = f"gold.{spec.name}: sync attempt {attempt - 1} of {state.state_id} failed"
        ledger.record_refusal(conn, spec.name, state.state_id, reason, "failing", retry_at)
    elif refusal.retry_at is None or abs((refusal.retry_at - retry_at).total_seconds()) > 5:
        ledger.schedule_retry(conn, spec.name, state.state_id, retry_at)


def _report_orphans(
    context: dg.SensorEvaluationContext,
    conn: psycopg.Connection,
    found: list[orphans.Orphan],
    dashboard_role: str,
    declared: list[str],
) -> None:
    """Revoke the dashboard's reads of orphans, and log each one once (the first tick)."""
    orphans.notice(conn, found, dashboard_role, declared)
    by_name = {o.table: o for o in found}
    for table in orphans.first_sensor_log(conn, found):
        context.log.warning(by_name[table].describe())


def _retry_plan(
    instance: dg.DagsterInstance, table: str, state_id: str, episode: str
) -> tuple[int, float, DagsterRun | None]:
    """(attempt number of the next sync request, seconds still to wait before it, the last sync
    run of this lake state when it is still pending or failed, else None). A run past its
    deadline (its worker died; run monitoring ends it) is replaced at once: the deadline was its
    wait. A failed or canceled one is replaced after the backoff."""
    records = instance.get_run_records(
        filters=RunsFilter(tags={"gold/table": table, "gold/lake_version": state_id}), limit=1
    )
    if not records or records[0].dagster_run.tags.get("gold/episode", episode) != episode:
        return 1, 0.0, None  # none yet in this episode (a run without the tag: an older one)
    run = records[0].dagster_run
    attempt = int(run.tags.get("gold/attempt", "1"))
    if past_deadline(instance, records[0]):
        return attempt + 1, 0.0, None
    if run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        return attempt, 0.0, run  # the same run key again: the daemon never runs it twice
    ended = records[0].end_time or time.time()
    wait = max(0.0, ended + retry_rule.sensor_backoff_s(attempt) - time.time())
    return attempt + 1, wait, run
