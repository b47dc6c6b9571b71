"""`lake_change_sensor`: the RDS copies follow the lake, whoever changed it.

Each tick lists every Gold table's current location (one small LIST per table) and reads the
ledger and the copies' catalog facts (a few queries, no scan). A state Dagster did not produce
(a hand-run CTAS, an analyst's INSERT INTO, a manual upload) is recorded as a runless
materialization of the lake asset; every RDS copy that the in-sync rule finds out of sync (the
lake moved on, or the copy was dropped, truncated or altered by hand) gets a run request keyed
by table, lake state and the copy's catalog facts, so nothing runs twice. The same tick records
what the UI should show on the RDS asset meanwhile (`copy_record`): the lag as a failing
`in_sync_with_lake` evaluation, and on a new instance the copies the ledger holds.
"""

import hashlib
import time

import dagster as dg
from dagster._core.storage.dagster_run import RunsFilter

from platform_assets import steady
from platform_assets.active_runs import (
    MAX_RUNTIME_TAG,
    active_asset_keys,
    past_deadline,
    sync_max_runtime_s,
)
from platform_assets.copy_record import copy_events, last_metadata
from platform_assets.gold_assets import months_changes, months_partitions, rds_key
from platform_assets.lake_assets import lake_key
from platform_assets.specs import GOLD_TABLES
from platform_assets.status import lake_row_count, read_rds_facts
from resources.lake_tables import GoldLake, LakeFault
from resources.serving_db import ServingDatabase
from resources.storage import LakeStorage


def _run_key(table: str, state_id: str, verdict, rds) -> str:
    """`sync:<table>:<lake state>`; a damaged copy adds a digest of its catalog facts, so a copy
    damaged again after a repair gets a new run key."""
    key = f"sync:{table}:{state_id}"
    if not verdict.copy_drifted:
        return key
    copy = rds.copies.get(table)
    text = repr((copy.oid, copy.columns, sorted(copy.children.items()))) if copy else "missing"
    return f"{key}:repair-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _months_requests(instance: dg.DagsterInstance, conn, look_at: set[str]) -> list:
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


# The daemon's floor (it looks at sensors every 5 s): a change waits 2.5 s on average for the
# tick, not 7.5 s (benchmarks/staleness.py); steady ticks keep a tick cheap at hundreds of tables.
INTERVAL_S = 5


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
    seen = cursor.seen
    with serving.connect(autocommit=True) as conn:
        rds = read_rds_facts(conn, [spec.name for spec in GOLD_TABLES])
        touched = cursor.start_tick(context.instance, [spec.name for spec in GOLD_TABLES], rds)
        partition_requests = _months_requests(context.instance, conn, touched)
    active = active_asset_keys(context.instance)
    events, requests = [], []
    for spec in GOLD_TABLES:
        try:
            state = gold.current_state(spec.name)
            if state is None:
                continue
            if lake_key("gold", spec.name) in active or rds_key(spec.name) in active:
                # A run is building or syncing this table: its new version is not stored on the
                # instance yet, so it would look like an outside change. Look after the run.
                cursor.forget(spec.name)
                continue
            events += _record_outside_change(context, gold, spec, state, seen)
            verdict = rds.verdict(spec.name, state)
            if cursor.unchanged(spec.name, state, verdict, touched):
                continue  # in sync, as the last look found it, which recorded what was owed
            events += copy_events(context.instance, spec, state, rds, verdict)  # lag in the UI
            cursor.looked_at(spec.name, state, verdict)
            request = _sync_request(context, spec, state, rds, verdict)
        except LakeFault as fault:  # this table only: the others are looked at as usual
            context.log.warning(f"{fault}; its RDS copy keeps serving the last good version")
            cursor.forget(spec.name)
            continue
        if request is not None:
            requests.append(request)
    return dg.SensorResult(
        run_requests=requests,
        asset_events=events,
        dynamic_partitions_requests=partition_requests,
        cursor=cursor.dump(),
    )


def _record_outside_change(context, gold: GoldLake, spec, state, seen: dict) -> list:
    """A runless materialization of the lake asset for a state Dagster did not produce."""
    key = lake_key("gold", spec.name)
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


def _sync_request(context, spec, state, rds, verdict) -> dg.RunRequest | None:
    """A sync run for a copy the in-sync rule finds out of sync; after a failed one, again
    with backoff (the same lake state's run key is used up), so the copy heals once the fault
    clears. A lake state whose sync was refused is not requested again: only a new state (or a
    person) heals a refusal."""
    if verdict.in_sync:
        return None
    refused = rds.refusals.get(spec.name)
    if refused is not None and refused[0] == state.state_id:  # errors.py: never retried
        context.log.info(f"gold.{spec.name}: syncing {state.state_id} was refused: {refused[1]}")
        return None
    key = _run_key(spec.name, state.state_id, verdict, rds)
    attempt, wait = _retry_plan(context.instance, spec.name, state.state_id)
    if wait > 0:
        context.log.info(
            f"gold.{spec.name} out of sync ({verdict.reason}); its last sync failed: "
            f"next attempt ({attempt}) in {wait:.0f} s"
        )
        return None
    context.log.info(f"gold.{spec.name} out of sync: {verdict.reason}")
    return dg.RunRequest(
        run_key=key if attempt == 1 else f"{key}:attempt-{attempt}",
        asset_selection=[rds_key(spec.name)],
        tags={
            "gold/table": spec.name,
            "gold/lake_version": state.state_id,
            "gold/attempt": str(attempt),
            MAX_RUNTIME_TAG: str(int(sync_max_runtime_s())),  # run monitoring ends it after
        },
    )


RETRY_BASE_S = 60.0  # a failed sensor-launched sync is requested again after 1, 2, 4 ... min
RETRY_MAX_S = 3600.0


def _retry_plan(instance: dg.DagsterInstance, table: str, state_id: str) -> tuple[int, float]:
    """(attempt number of the next sync request, seconds still to wait before it). A run past
    its deadline (its worker died; run monitoring ends it) is replaced at once: the deadline was
    its wait. A failed or canceled one is replaced after backoff."""
    records = instance.get_run_records(
        filters=RunsFilter(tags={"gold/table": table, "gold/lake_version": state_id}), limit=1
    )
    if not records:
        return 1, 0.0
    run = records[0].dagster_run
    attempt = int(run.tags.get("gold/attempt", "1"))
    if past_deadline(instance, records[0]):
        return attempt + 1, 0.0
    if run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        return attempt, 0.0  # the same run key again: the daemon never runs it twice
    ended = records[0].end_time or time.time()
    backoff = min(RETRY_BASE_S * 2 ** (attempt - 1), RETRY_MAX_S)
    return attempt + 1, max(0.0, ended + backoff - time.time())
