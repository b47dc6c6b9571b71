"""The factory: from one `GoldTableSpec`, the lake asset, the RDS asset and their checks.

lake/gold/<table>   Athena CTAS into a new version folder; blocking checks; manifest last
rds/gold/<table>    the sync protocol into RDS; in-sync, row count and fingerprint checks
"""

import contextlib
import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

import dagster as dg
import psycopg
import pyarrow as pa

from platform_assets import (
    build_record,
    copy_checks,
    copy_record,
    insync,
    insync_check,
    retry_rule,
)
from platform_assets import status as table_status
from platform_assets.identifiers import quote_ident
from platform_assets.keys import LAKE_CHECKS, RDS_CHECKS, lake_key, rds_key, rds_op_name
from platform_assets.lake import athena_cost
from platform_assets.lake.fingerprint import VERSION as CHECKSUM_VERSION
from platform_assets.lake.fingerprint import fingerprint
from platform_assets.lake.tables import (
    GoldLake,
    LakeFault,
    LakeTableState,
    Manifest,
    new_version_id,
    version_prefix,
)
from platform_assets.lake.types import UnsupportedType
from platform_assets.lake_assets import table_schema_metadata
from platform_assets.serving import footprint, ledger, loader, snapshot
from platform_assets.serving.errors import (
    KEEPS_SERVING,
    NotPublishing,
    SyncError,
    SyncRefused,
    as_failure,
)
from platform_assets.serving.names import WHOLE
from platform_assets.serving.ownership import Deployment
from platform_assets.serving.protocol import SyncRun, sync_table
from platform_assets.specs import GOLD_TABLES, GoldTableSpec
from platform_assets.sql_tables import referenced_tables
from resources.serving_db import ServingDatabase
from resources.sql_engine import SqlEngine
from resources.storage import LakeStorage, listing_token


def freshness(spec: GoldTableSpec) -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.time_window(
        fail_window=spec.freshness_sla, warn_window=spec.freshness_warn
    )


class SyncConfig(dg.Config):
    force: bool = False
    """Publish even an empty table or one that shrank beyond the spec's limit."""
    months: list[str] = []
    """Partitioned tables: reload these months ('YYYY-MM') even if their checksums match."""


# ---- lake/gold/<table> -------------------------------------------------------------------------


def _lake_check_results(
    engine: SqlEngine, spec: GoldTableSpec, relation: str, location: str, rows: int
) -> list[dg.AssetCheckResult]:
    pk = [quote_ident(c) for c in spec.primary_key]
    cols = ", ".join(pk)
    dup = (
        engine.query(
            f"SELECT COUNT(*) AS n FROM (SELECT {cols} FROM {relation} GROUP BY {cols} "
            "HAVING COUNT(*) > 1) AS d",
            bindings={relation: location},
        )
        .column(0)[0]
        .as_py()
    )
    nulls = (
        engine.query(
            f"SELECT COUNT_IF({' OR '.join(f'{c} IS NULL' for c in pk)}) AS n FROM {relation}",
            bindings={relation: location},
        )
        .column(0)[0]
        .as_py()
        or 0
    )
    key = lake_key("gold", spec.name)
    return [
        dg.AssetCheckResult(
            asset_key=key, check_name="not_empty", passed=rows > 0, metadata={"row_count": rows}
        ),
        dg.AssetCheckResult(
            asset_key=key,
            check_name="primary_key_unique",
            passed=dup == 0,
            metadata={"duplicate_keys": dup, "primary_key": cols},
        ),
        dg.AssetCheckResult(
            asset_key=key,
            check_name="primary_key_not_null",
            passed=nulls == 0,
            metadata={"rows_with_null_key": nulls, "primary_key": cols},
        ),
    ]


def build_lake_asset(spec: GoldTableSpec) -> dg.AssetsDefinition:
    key = lake_key("gold", spec.name)
    sql = spec.sql
    sql_hash = build_record.code_hash(sql)
    upstream = [f"{layer}/{t}" for layer, t in referenced_tables(sql)]

    @dg.asset(
        key=key,
        group_name="gold",
        kinds={"s3", "athena"},
        deps=[lake_key(layer, t) for layer, t in referenced_tables(sql)],
        description=f"{spec.description} Built by Athena CTAS into a new version folder.",
        check_specs=[
            dg.AssetCheckSpec(name, asset=key, blocking=True, description=text)
            for name, text in LAKE_CHECKS.items()
        ],
        freshness_policy=freshness(spec),
        code_version=sql_hash,
        owners=list(spec.owners) or None,
        tags=spec.tags or None,
        retry_policy=retry_rule.OP_RETRY,
    )
    @retry_rule.classifies(spec.name, "the lake build")
    def _lake_gold(
        context: dg.AssetExecutionContext, lake: LakeStorage, engine: dg.ResourceParam[SqlEngine]
    ) -> dg.MaterializeResult:
        gold = GoldLake(lake)
        inputs = build_record.inputs_key(
            sql_hash, engine.dialect, *build_record.upstream_tokens(lake, upstream)
        )
        current = _current_or_none(gold, spec)
        if current is not None and current.manifest.inputs == inputs:
            context.log.info(f"gold.{spec.name}: inputs unchanged: {current.version} still serves")
            return _unchanged_result(lake, spec, current, "inputs")
        ran_before = len(engine.statements_run())
        version = new_version_id(f"{sql_hash}:{context.run.run_id}")
        location = version_prefix(spec.name, version)
        build_table = f"gold.{spec.name}__build"
        try:
            stats = engine.create_table_as(build_table, sql, location)
            files = gold.list_version(spec.name, version)
            keys = [f.key for f in files]
            schema = loader.load_schema(lake.dataset(keys).schema)
            segments = engine.segment_checksums(build_table, schema, spec.segment_column, location)
        except BaseException as exc:  # no half-built version folder left without a manifest
            lake.delete_prefix(location)
            if isinstance(exc, (UnsupportedType, pa.ArrowInvalid)):  # the SQL's data: say so
                raise dg.Failure(
                    description=f"gold.{spec.name}: the build cannot be stored exactly: "
                    f"{str(exc).splitlines()[0]}; the lake keeps serving the previous version",
                    allow_retries=False,
                ) from None
            raise
        rows = sum(n for n, _ in segments.values())
        checks = _lake_check_results(engine, spec, build_table, location, rows)
        published = all(c.passed for c in checks)
        same = current is not None and _same_content(current, fingerprint(segments), schema)
        if published and current is not None and same:
            # The same content gives the same version: keep it, remember what it was built from.
            lake.delete_prefix(location)
            gold.publish(replace(current.manifest, inputs=inputs))
            context.log.info(f"gold.{spec.name}: same content as {current.version}: kept")
            return _unchanged_result(lake, spec, current, "content")
        meta = {
            "dagster/row_count": rows,
            "dagster/column_schema": table_schema_metadata(schema),
            "version": version,
            "location": dg.MetadataValue.path(lake.uri(location)),
            "files": len(files),
            "bytes": sum(f.size for f in files),
            "fingerprint": fingerprint(segments),
            "token": listing_token(files),
            "query_id": stats.query_id,
            "engine_seconds": round(stats.seconds, 3),
            "published": published,
        }
        if published:
            gold.publish(
                Manifest(
                    table=spec.name,
                    version=version,
                    location=location,
                    created_at=datetime.now(UTC).isoformat(),
                    row_count=rows,
                    fingerprint=fingerprint(segments),
                    schema=_schema_entries(schema),
                    files=[{"key": f.key, "size": f.size, "mtime_ns": f.mtime_ns} for f in files],
                    token=listing_token(files),
                    query_id=stats.query_id,
                    data_scanned_bytes=stats.data_scanned_bytes,
                    segments={k: list(v) for k, v in segments.items()},
                    checksums=CHECKSUM_VERSION,
                    inputs=inputs,
                )
            )
            engine.publish(f"gold.{spec.name}", location)
            pruned = gold.prune(spec.name, keep_days=spec.retention_days)
            meta["pruned_versions"] = len(pruned)
            context.log.info(f"published gold.{spec.name} version {version} ({rows} rows)")
        else:
            failed = [c.check_name or "?" for c in checks if not c.passed]
            context.log.error(
                f"version {version} of gold.{spec.name} failed {', '.join(failed)}: not published;"
                " the lake keeps serving the previous version"
            )
        meta.update(athena_cost.scan_metadata(engine, since=ran_before))
        data_version = dg.DataVersion(meta["fingerprint"]) if published else None
        return dg.MaterializeResult(metadata=meta, check_results=checks, data_version=data_version)

    return _lake_gold


def _current_or_none(gold: GoldLake, spec: GoldTableSpec) -> LakeTableState | None:
    """The published state when the platform's own files are all it holds, else None (build:
    a changed or unreadable location is never taken as unchanged)."""
    try:
        state = gold.current_state(spec.name)
    except LakeFault:
        return None
    return state if state is not None and not state.changed_outside else None


def _same_content(current: LakeTableState | None, new_fingerprint: str, schema: pa.Schema) -> bool:
    if current is None:
        return False
    return (
        current.manifest.fingerprint == new_fingerprint
        and current.manifest.schema == _schema_entries(schema)
    )


def _schema_entries(schema: pa.Schema) -> list[dict]:
    """A version's columns as its manifest lists them."""
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def _unchanged_result(
    lake: LakeStorage, spec: GoldTableSpec, state: LakeTableState, same: str
) -> dg.MaterializeResult:
    """The current version again, nothing published (`same`: "inputs", not rebuilt, or
    "content", rebuilt to the same data); its checks are the ones it passed when it was
    published (a version is published only when all pass)."""
    manifest, key = state.manifest, lake_key("gold", spec.name)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": manifest.row_count,
            "version": manifest.version,
            "location": dg.MetadataValue.path(lake.uri(manifest.location)),
            "files": len(manifest.files),
            "fingerprint": manifest.fingerprint,
            "token": manifest.token,
            "published": False,
            "unchanged": same,
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key=key,
                check_name=name,
                passed=True,
                metadata={"version": manifest.version, "unchanged": same},
            )
            for name in LAKE_CHECKS
        ],
        data_version=dg.DataVersion(manifest.fingerprint),
    )


# ---- rds/gold/<table> --------------------------------------------------------------------------


def _rds_check_results(
    spec: GoldTableSpec,
    gold: GoldLake,
    engine: SqlEngine,
    db: ServingDatabase,
    conn: psycopg.Connection,
    selected: Collection[str],
) -> list[dg.AssetCheckResult]:
    """A check-only run's RDS checks (the schedule's), under the table's sync lock (shared): a
    sync publishing meanwhile waits. The lake is read under the lock, so a sync that published
    just before is judged, not missed; row count and fingerprint scan the copy and judge it
    against the version the ledger says it holds."""
    key = rds_key(spec.name)
    with conn.transaction():
        copy_checks.hold_sync_lock(conn, spec.name, db.sync_lock_wait_s)
        snap, fault = _snapshot(spec, gold, engine)
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
            checks.append(_in_sync_check(spec, gold, snap, facts, st))
        checks += copy_checks.judge_copy(
            conn, spec, key, held, rds_rows, db, selected, _budget_tables(spec), snap
        )
    return checks


def _sync_checks(
    spec: GoldTableSpec,
    gold: GoldLake,
    db: ServingDatabase,
    selected: Collection[str],
    run: SyncRun,
) -> tuple[list[dg.AssetCheckResult], table_status.RdsFacts]:
    """A sync run's RDS checks, judged from its facts while it still holds the table's sync
    lock: the copy's ledger rows and catalog read once after the publish, the lake snapshot it
    loaded, and the checksums staging verified. The live copy is scanned only for units this
    run did not verify (all of them when nothing was loaded); its rows are counted by that same
    scan."""
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
        checks.append(_in_sync_check(spec, gold, run.snap, facts, st))
    checks += copy_checks.judge_copy(
        conn, spec, key, held, rds_rows, db, selected, _budget_tables(spec), run.snap, actual
    )
    return checks, facts


def _budget_tables(spec: GoldTableSpec) -> list[str]:
    """The copies `fits_storage_budget` adds up: every declared table's (one database)."""
    return sorted({s.name for s in GOLD_TABLES} | {spec.name})


def _snapshot(
    spec: GoldTableSpec, gold: GoldLake, engine: SqlEngine
) -> tuple[snapshot.LakeSnapshot | None, LakeFault | None]:
    """(the run's one lake read, None) or (None, the fault that kept it from being read)."""
    try:
        return snapshot.take(spec, gold, engine), None
    except LakeFault as exc:  # the sync refuses it too, naming the file
        return None, exc


def _in_sync_check(
    spec: GoldTableSpec,
    gold: GoldLake,
    snap: snapshot.LakeSnapshot | None,
    facts: table_status.RdsFacts,
    st: insync.TableStatus,
) -> dg.AssetCheckResult:
    metadata = insync_check.metadata(st)
    if snap is not None and not st.in_sync:
        behind = _months_behind(spec, snap, facts)
        if behind:
            metadata["months_behind"] = ", ".join(behind[:24])
    try:  # one listing: did the lake move on during the run?
        now = gold.current_state(spec.name)
    except LakeFault:
        now = None
    if snap is not None and now is not None and now.token != snap.state.token:
        metadata["lake_moved_on_to"] = now.state_id
    return dg.AssetCheckResult(
        asset_key=rds_key(spec.name),
        check_name="in_sync_with_lake",
        passed=st.in_sync,
        severity=insync_check.severity(st),
        description=st.reason,
        metadata=metadata,
    )


def _months_behind(
    spec: GoldTableSpec, snap: snapshot.LakeSnapshot, facts: table_status.RdsFacts
) -> list[str]:
    """Partitioned tables: the months whose RDS partition differs from the snapshot's."""
    if not spec.partitioned:
        return []
    _, units = facts.ledger.get(spec.name, (None, {}))
    if ledger.outdated_keys(units):
        return []  # an older fingerprint's checksums say nothing about today's months
    expected = {m: {m: v} for m, v in snap.segments.items()}  # one unit per month
    return ledger.units_behind(units, expected)


def months_partitions_name(spec: GoldTableSpec) -> str:
    return f"{spec.name}__months"


def months_partitions(spec: GoldTableSpec) -> dg.DynamicPartitionsDefinition:
    """The months a partitioned RDS copy holds: the partitions of its reload-months job."""
    return dg.DynamicPartitionsDefinition(name=months_partitions_name(spec))


def months_changes(
    instance: dg.DagsterInstance,
    spec: GoldTableSpec,
    conn: psycopg.Connection | None,
    held: set[str] | None = None,
) -> tuple[list[str], list[str]]:
    """(months to add, months to drop) so the reload job's partitions are the months held
    (`held`: the ledger's months as the caller read them, else read here)."""
    if held is None:
        if conn is None:
            raise ValueError("months_changes needs the ledger's months or a connection")
        held = set(ledger.read_partitions(conn, spec.name))
    known = set(instance.get_dynamic_partitions(months_partitions_name(spec)))
    return sorted(held - known), sorted(known - held)


def _register_months(instance: dg.DagsterInstance, spec: GoldTableSpec, held: set[str]) -> None:
    added, dropped = months_changes(instance, spec, None, held)
    name = months_partitions_name(spec)
    if added:
        instance.add_dynamic_partitions(name, added)
    for month in dropped:
        instance.delete_dynamic_partition(name, month)


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
    key, upstream = rds_key(spec.name), lake_key("gold", spec.name)

    @dg.multi_asset(
        name=rds_op_name(spec.name),
        specs=[
            dg.AssetSpec(
                key,
                deps=[upstream],
                group_name="serving",
                kinds={"postgres"},
                description=f"Serving copy of gold.{spec.name} in RDS PostgreSQL (schema gold).",
                freshness_policy=freshness(spec),
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
                for result in _rds_check_results(spec, gold, engine, serving, conn, selected):
                    results.append(result)
                    yield result
                copy_record.reassert(context.instance, context.run_id, results)
                return
            snap, _ = _snapshot(spec, gold, engine)  # a fault: the sync refuses it, naming it
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
                    judge=partial(_sync_checks, spec, gold, serving, selected),
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
                _register_months(context.instance, spec, set(units) - {WHOLE})
            metadata = {**result.metadata(), **footprint.asset_metadata(conn, spec.name)}
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        yield from checks
        copy_record.reassert(context.instance, context.run_id, checks)

    return _rds_gold


def build_gold_assets(specs: Iterable[GoldTableSpec] = GOLD_TABLES) -> list[dg.AssetsDefinition]:
    assets = []
    for spec in specs:
        spec.validate()
        assets += [build_lake_asset(spec), build_rds_asset(spec)]
    return assets
