"""The lake asset `lake/gold/<table>`: Athena CTAS into a new version folder, its blocking
checks, the manifest written last; nothing rebuilt for unchanged inputs (build_record.py).
"""

from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa

from platform_assets import build_record, retry_rule
from platform_assets.gold_assets import freshness
from platform_assets.identifiers import quote_ident
from platform_assets.keys import LAKE_CHECKS, lake_key
from platform_assets.lake import athena_cost
from platform_assets.lake.fingerprint import VERSION as CHECKSUM_VERSION
from platform_assets.lake.fingerprint import fingerprint
from platform_assets.lake.tables import (
    GOLD,
    GoldLake,
    LakeFault,
    LakeTableState,
    Manifest,
    new_version_id,
    version_prefix,
)
from platform_assets.lake.types import UnsupportedType
from platform_assets.lake_assets import table_schema_metadata
from platform_assets.serving import loader
from platform_assets.specs import GoldTableSpec
from platform_assets.sql_tables import referenced_tables
from resources.sql_engine import SqlEngine
from resources.storage import LakeStorage, listing_token


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
    key = lake_key(GOLD, spec.name)
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
    key = lake_key(GOLD, spec.name)
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
        freshness_policy=freshness.policy(spec),
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
        build_table = f"{GOLD}.{spec.name}__build"
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
            engine.publish(f"{GOLD}.{spec.name}", location)
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
    manifest, key = state.manifest, lake_key(GOLD, spec.name)
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
