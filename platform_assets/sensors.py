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
import json

import dagster as dg

from platform_assets.active_runs import active_asset_keys
from platform_assets.copy_record import copy_events, last_metadata
from platform_assets.gold_assets import months_changes, months_partitions, rds_key
from platform_assets.lake_assets import lake_key
from platform_assets.specs import GOLD_TABLES
from platform_assets.status import read_rds_facts
from resources.lake_tables import GoldLake
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


def _months_requests(instance: dg.DagsterInstance, conn) -> list:
    """Keep each reload-months job's partitions equal to the months RDS holds, also on a new
    instance (a fresh `dagster dev`) where no sync has run yet."""
    requests = []
    for spec in GOLD_TABLES:
        if not spec.partitioned:
            continue
        added, dropped = months_changes(instance, spec, conn)
        if added:
            requests.append(months_partitions(spec).build_add_request(added))
        if dropped:
            requests.append(months_partitions(spec).build_delete_request(dropped))
    return requests


@dg.sensor(
    name="lake_change_sensor",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[rds_key(spec.name) for spec in GOLD_TABLES],
    description="Refreshes RDS copies when their lake Gold table changes, in or outside Dagster.",
)
def lake_change_sensor(
    context: dg.SensorEvaluationContext, lake: LakeStorage, serving: ServingDatabase
) -> dg.SensorResult:
    gold = GoldLake(lake)
    seen = json.loads(context.cursor) if context.cursor else {}
    with serving.connect(autocommit=True) as conn:
        rds = read_rds_facts(conn, [spec.name for spec in GOLD_TABLES])
        partition_requests = _months_requests(context.instance, conn)
    active = active_asset_keys(context.instance)
    events, requests = [], []
    for spec in GOLD_TABLES:
        state = gold.current_state(spec.name)
        if state is None:
            continue
        key = lake_key("gold", spec.name)
        if key in active or rds_key(spec.name) in active:
            # A run is building or syncing this table: its new version is not stored on the
            # instance yet, so it would look like an outside change. Look again after the run.
            continue
        if seen.get(spec.name) != state.state_id:
            first_look = spec.name not in seen
            seen[spec.name] = state.state_id
            if last_metadata(context.instance, key, "version") != state.state_id:
                how = "first seen by this instance" if first_look else "changed outside Dagster"
                context.log.info(f"gold.{spec.name} {how}: {state.state_id}")
                events.append(
                    dg.AssetMaterialization(
                        asset_key=key,
                        description=f"Recorded by lake_change_sensor: {how}.",
                        metadata={
                            "version": state.state_id,
                            "token": state.token,
                            "files": len(state.parquet_keys),
                            "dagster/row_count": lake.parquet_row_count(state.parquet_keys),
                            "changed_outside_dagster": state.changed_outside or not first_look,
                        },
                    )
                )
        verdict = rds.verdict(spec.name, state)
        events += copy_events(context.instance, spec, state, rds, verdict)
        if verdict.in_sync:
            continue
        context.log.info(f"gold.{spec.name} out of sync: {verdict.reason}")
        requests.append(
            dg.RunRequest(
                run_key=_run_key(spec.name, state.state_id, verdict, rds),
                asset_selection=[rds_key(spec.name)],
                tags={"gold/table": spec.name, "gold/lake_version": state.state_id},
            )
        )
    return dg.SensorResult(
        run_requests=requests,
        asset_events=events,
        dynamic_partitions_requests=partition_requests,
        cursor=json.dumps(seen),
    )
