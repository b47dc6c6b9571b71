"""The RDS asset `rds/gold/<table>`: the sync protocol into RDS (serving/protocol.py) on the
run's one connection, then its checks (rds_checks.py); a check-only run (the schedule's)
judges the copy as it is.
"""

import os
from collections.abc import Callable
from functools import partial

import dagster as dg

from platform_assets import copy_record, retry_rule
from platform_assets.gold_assets import freshness, months, rds_checks
from platform_assets.keys import RDS_CHECKS, lake_key, rds_key, rds_op_name
from platform_assets.lake.tables import GOLD, GoldLake
from platform_assets.serving import footprint, ledger, snapshot
from platform_assets.serving.errors import (
    KEEPS_SERVING,
    NotPublishing,
    SyncError,
    SyncRefused,
    as_failure,
)
from platform_assets.serving.names import WHOLE
from platform_assets.serving.protocol import sync_table
from platform_assets.specs import GoldTableSpec
from resources.serving_db import ServingDatabase
from resources.sql_engine import SqlEngine
from resources.storage import LakeStorage


class SyncConfig(dg.Config):
    force: bool = False
    """Publish even an empty table or one that shrank beyond the spec's limit."""
    months: list[str] = []
    """Partitioned tables: reload these months ('YYYY-MM') even if their checksums match."""


def run_still_wanted(context: dg.AssetExecutionContext) -> Callable[[], None]:
    """A check for right before the publish: the step's run is still in progress and the process
    that started this step (the run worker, or the executor's process) is still its parent.
    A run worker killed under a step process leaves that process running on its own; the run is
    then failed (by the code server, or run monitoring) and must not see a publish after that."""
    parent, run_id, instance = os.getppid(), context.run.run_id, context.instance

    def check() -> None:
        if os.getppid() != parent:
            raise NotPublishing(
                f"run {run_id}: the process that started this step ended (pid {parent}); "
                f"not publishing, {KEEPS_SERVING}"
            )
        run = instance.get_run_by_id(run_id)
        if run is None or run.status not in (
            dg.DagsterRunStatus.STARTED,
            dg.DagsterRunStatus.STARTING,
        ):
            status = run.status.value if run else "deleted"
            raise NotPublishing(f"run {run_id} is {status}: not publishing, {KEEPS_SERVING}")

    return check


def build_rds_asset(spec: GoldTableSpec) -> dg.AssetsDefinition:
    key, upstream = rds_key(spec.name), lake_key(GOLD, spec.name)

    @dg.multi_asset(
        name=rds_op_name(spec.name),
        specs=[
            dg.AssetSpec(
                key,
                deps=[upstream],
                group_name="serving",
                kinds={"postgres"},
                description=f"Serving copy of gold.{spec.name} in RDS PostgreSQL (schema gold).",
                freshness_policy=freshness.policy(spec),
                owners=list(spec.owners) or None,
                tags=spec.tags or None,
                metadata={
                    "primary_key": ", ".join(spec.primary_key),
                    "indexes": "; ".join(", ".join(i) for i in spec.indexes) or "none",
                },
            )
        ],
        check_specs=[
            dg.AssetCheckSpec(name, asset=key, additional_deps=[upstream], description=text)
            for name, text in RDS_CHECKS.items()
        ],
        can_subset=True,
        retry_policy=retry_rule.OP_RETRY,
    )
    @retry_rule.classifies(spec.name, "the sync")
    def _rds_gold(  # noqa: ANN202 - Dagster reads an asset's return annotation as its output
        context: dg.AssetExecutionContext,
        config: SyncConfig,
        lake: LakeStorage,
        engine: dg.ResourceParam[SqlEngine],
        serving: ServingDatabase,
    ):
        gold = GoldLake(lake)
        selected = {k.name for k in context.selected_asset_check_keys}
        with serving.connect(autocommit=True) as conn:  # the run's one connection
            if key not in context.selected_asset_keys:  # check-only (the schedule's run)
                ledger.bootstrap(conn, serving.dashboard_role)
                results = []  # yielded as judged: stored while the checks hold the table's lock
                checks, _ = rds_checks.check_only_results(
                    spec, gold, engine, serving, conn, selected
                )
                for result in checks:
                    results.append(result)
                    yield result
                copy_record.reassert(context.instance, context.run.run_id, results)
                return
            snap, _ = snapshot.take_or_fault(
                spec, gold, engine
            )  # a fault: the sync refuses it, naming it
            try:
                result = sync_table(
                    spec,
                    gold,
                    engine,
                    serving,
                    force=config.force,
                    log=context.log.info,
                    months=config.months,
                    snap=snap,
                    still_wanted=run_still_wanted(context),
                    conn=conn,
                    judge=partial(rds_checks.sync_results, spec, gold, engine, serving, selected),
                )
            except SyncError as failed:  # errors.py: refusals recorded, only transients retried
                if isinstance(failed, SyncRefused):  # recorded, or another deployment's copy
                    yield dg.AssetCheckResult(
                        asset_key=key,
                        check_name="in_sync_with_lake",
                        passed=False,
                        metadata={
                            **{k: v for k, v in failed.numbers.items() if v is not None},
                            "refused": str(failed),
                        },
                    )
                raise as_failure(failed) from None
            checks, facts = result.judged
            if spec.partitioned:
                _, units = facts.ledger.get(spec.name, (None, {}))
                months.register_months(context.instance, spec, set(units) - {WHOLE})
            metadata = {**result.metadata(), **footprint.asset_metadata(conn, spec.name)}
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        yield from checks
        copy_record.reassert(context.instance, context.run.run_id, checks)

    return _rds_gold
