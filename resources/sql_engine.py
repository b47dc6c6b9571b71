"""The SQL engine that builds Silver and Gold: Athena in production, DuckDB locally.

SQL is written once, in the Athena (Trino) dialect. `DuckDBEngine` transpiles it with sqlglot and
resolves `bronze.x` / `silver.x` / `gold.x` to Parquet in the lake by the lake's layout, so the
same files and the same SQL run on a laptop, in tests and on AWS.

Both engines satisfy the `SqlEngine` Protocol (below); assets call only its methods, and the
type checker (tests/test_types.py) holds both engines to its signatures.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pyarrow as pa
import sqlglot
from pydantic import Field, PrivateAttr
from sqlglot import exp

from platform_assets.identifiers import (
    quote_ddl_ident,
    quote_ident,
    quote_idents,
    quote_literal,
    quote_qualified,
)
from platform_assets.lake import types as lake_types
from platform_assets.lake.fingerprint import Segments, segment_checksum_sql, segments_from_rows
from platform_assets.lake.tables import GOLD, LAKE_LAYERS, GoldLake
from resources.dagster_resources import CheckedSettings
from resources.settings_check import athena_problems, duckdb_problems
from resources.storage import LakeStorage

if TYPE_CHECKING:
    import pyarrow.dataset as ds


@dataclass(frozen=True)
class QueryStats:
    """What the engine reports about one statement (shown as asset metadata)."""

    engine: str
    query_id: str
    seconds: float
    data_scanned_bytes: int | None = None


# Trino functions the fingerprint uses that DuckDB lacks (and sqlglot passes through as they
# are), defined as DuckDB macros so the very statement Athena gets runs on DuckDB too
# (tests/test_athena_sql.py): TO_IEEE754_64, the 8 big-endian bytes of a double.
TRINO_MACROS = {
    "TO_IEEE754_64": "CREATE MACRO to_ieee754_64(x) AS "
    "from_hex(LPAD(HEX(CAST(CAST(CAST(x AS DOUBLE) AS BIT) AS BIGINT)), 16, '0'))",
}

# the lake's layers as DuckDB schemas, one statement composed once per process
_LAYER_SCHEMAS = ";\n".join(f"CREATE SCHEMA IF NOT EXISTS {q}" for q in quote_idents(LAKE_LAYERS))


def _count_if_as_count(node: exp.Expr) -> exp.Expr:
    """Trino's COUNT_IF(p) counts the rows where p is true and is 0 when there are none; DuckDB's
    returns NULL when p is NULL on every row of a group. COUNT(CASE WHEN p THEN 1 END) is the
    Trino meaning on both engines."""
    if isinstance(node, exp.CountIf):
        case = exp.Case(ifs=[exp.If(this=node.this.copy(), true=exp.Literal.number(1))])
        return exp.Count(this=case)
    return node


Bindings = Mapping[str, str]
"""relation ('gold.t__build') -> the lake location whose files it must read for one call."""


class SqlEngine(Protocol):
    """What assets may ask of an engine; `DuckDBEngine` and `AthenaEngine` both satisfy it.

    SQL is in the Athena dialect. `bindings` (and `location`) name the lake files a relation
    reads: DuckDB binds the relation to them, Athena accepts only a table it placed there itself
    (by `create_table_as`, `register_external` or `publish`) and refuses any other binding.
    """

    @property
    def dialect(self) -> str: ...

    def statements_run(self) -> list[QueryStats]:
        """What this instance ran, in order (scanned bytes: a build's cost is a slice of it)."""
        ...

    def price_per_tb(self) -> float:
        """The price of a TB scanned (lake/athena_cost.py prices `statements_run`)."""
        ...

    def query(self, sql: str, bindings: Bindings | None = None) -> pa.Table: ...

    def segment_checksums(
        self,
        relation: str,
        schema: pa.Schema,
        segment_column: str,
        location: str | None = None,
        files: list[str] | None = None,
    ) -> Segments:
        """`files`: read only these lake keys (a run's snapshot: its checksums describe the
        files it listed, not a later listing)."""
        ...

    def create_table_as(
        self, table: str, sql: str, location: str, partitioned_by: list[str] | None = None
    ) -> QueryStats:
        """Run the SELECT and write its result as Parquet at `location` (replacing it)."""
        ...

    def register_external(
        self, table: str, location: str, schema: pa.Schema, partitioned_by: list[str] | None = None
    ) -> None: ...

    def publish(self, table: str, location: str) -> None:
        """Repoint the served `table` at `location`."""
        ...


def _hugeint_as_bigint(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """DuckDB sums BIGINTs into a 128-bit HUGEINT where Athena (Trino) keeps BIGINT and fails on
    overflow; cast them back so both engines write the same types (an overflow fails here too)."""
    described = con.execute(f"DESCRIBE {sql}").fetchall()
    huge = [name for name, type_, *_ in described if type_ == "HUGEINT"]
    if not huge:
        return sql
    casts = ", ".join(f"CAST({quote_ident(n)} AS BIGINT) AS {quote_ident(n)}" for n in huge)
    return f"SELECT * REPLACE ({casts}) FROM ({sql})"


class DuckDBEngine(CheckedSettings):
    """The local engine: DuckDB over the lake's Parquet, running Athena-dialect SQL."""

    lake: LakeStorage
    threads: int = Field(default=2, description="DuckDB worker threads.")
    memory_limit: str = Field(default="4GB", description="DuckDB memory limit.")

    @property
    def dialect(self) -> str:
        return "duckdb"

    def statements_run(self) -> list[QueryStats]:
        """Nothing is recorded: DuckDB reports no scanned bytes (see lake/athena_cost.py)."""
        return []

    def price_per_tb(self) -> float:
        return 0.0

    def translate(self, sql: str) -> str:
        return ";\n".join(
            statement.transform(_count_if_as_count).sql(dialect="duckdb")
            for statement in sqlglot.parse(sql, read="athena")
            if statement is not None
        )

    def settings_problems(self) -> list[str]:
        return duckdb_problems(self.threads)

    def _connect(
        self, sql: str, bindings: Mapping[str, str | list[str]] | None = None
    ) -> duckdb.DuckDBPyConnection:
        """A fresh connection with every lake table `sql` names bound to its Parquet files."""
        if not getattr(self, "_settings_passed", False):  # see require_settings
            self.require_settings()
        con = duckdb.connect(config={"threads": self.threads, "memory_limit": self.memory_limit})
        con.execute("SET TimeZone = 'UTC'")  # as Athena: a build never depends on the worker's TZ
        for macro in TRINO_MACROS.values():
            con.execute(macro)
        con.execute(_LAYER_SCHEMAS)
        bindings = bindings or {}
        seen: set[str] = set()
        for table in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Table):
            name = f"{table.db}.{table.name}" if table.db else table.name
            if name in seen or table.db not in LAKE_LAYERS:
                continue
            seen.add(name)
            dataset = self._dataset_for(name, bindings.get(name))
            alias = f"_lake_{table.db}_{table.name}"
            con.register(alias, dataset)
            view, source = quote_qualified(table.db, table.name), quote_ident(alias)
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM {source}")
        return con

    def _dataset_for(self, name: str, location: str | list[str] | None) -> ds.Dataset:
        schema, table = name.split(".", 1)
        if isinstance(location, list):  # the very files a snapshot listed
            return self.lake.dataset(location)
        if location is not None:
            return self.lake.dataset(location, hive=True)
        if schema == GOLD:
            state = GoldLake(self.lake).current_state(table)
            if state is None:
                raise LookupError(f"gold.{table} has no published version in the lake yet")
            return self.lake.dataset(state.parquet_keys)
        keys = [
            o.key for o in self.lake.list_keys(f"{schema}/{table}") if o.key.endswith(".parquet")
        ]
        if not keys:
            raise LookupError(
                f"{name} has no Parquet files at {self.lake.uri(schema + '/' + table)}"
            )
        return self.lake.dataset(f"{schema}/{table}", hive=True)

    def query(self, sql: str, bindings: Bindings | None = None) -> pa.Table:
        translated = self.translate(sql)
        con = self._connect(translated, bindings)
        try:
            return con.execute(translated).to_arrow_table()
        finally:
            con.close()

    def segment_checksums(
        self,
        relation: str,
        schema: pa.Schema,
        segment_column: str,
        location: str | None = None,
        files: list[str] | None = None,
    ) -> Segments:
        """`files`: the lake keys to read (a run's snapshot), instead of listing them again."""
        sql = segment_checksum_sql("duckdb", relation, schema, segment_column)
        source = files if files is not None else location
        con = self._connect(sql, {relation: source} if source is not None else None)
        try:
            return segments_from_rows(con.execute(sql).fetchall())
        finally:
            con.close()

    def create_table_as(
        self,
        table: str,
        sql: str,
        location: str,
        partitioned_by: list[str] | None = None,
    ) -> QueryStats:
        """Run the SELECT and write its result as Parquet at `location` (replacing it)."""
        started = time.monotonic()
        translated = self.translate(sql)
        con = self._connect(translated)
        try:
            query = _hugeint_as_bigint(con, translated)
            reader = lake_types.lake_reader(con.execute(query).to_arrow_reader(256_000))
            self.lake.delete_prefix(location)
            self.lake.write_parquet(location, reader, partition_cols=partitioned_by)
        finally:
            con.close()
        return QueryStats("duckdb", f"duckdb-{uuid.uuid4().hex[:12]}", time.monotonic() - started)

    def register_external(
        self, table: str, location: str, schema: pa.Schema, partitioned_by: list[str] | None = None
    ) -> None:
        """Nothing to do: DuckDB finds lake tables by their folder."""

    def publish(self, table: str, location: str) -> None:
        """Nothing to do: DuckDB reads `gold.x` through the manifest."""


class AthenaEngine(CheckedSettings):
    """Production engine: Athena via pyathena (CTAS with external_location into the lake)."""

    lake: LakeStorage
    region: str | None = Field(default=None, description="ATHENA_REGION / AWS_REGION.")
    work_group: str = Field(default="primary", description="ATHENA_WORKGROUP.")
    output_location: str | None = Field(
        default=None, description="ATHENA_OUTPUT_LOCATION: s3:// folder for query results."
    )
    endpoint_url: str | None = Field(default=None, description="ATHENA_ENDPOINT_URL (tests).")
    database_prefix: str = Field(
        default="", description="Prefix of the Glue databases (e.g. 'prod_' -> prod_gold)."
    )
    usd_per_tb: str = Field(
        default="5", description="ATHENA_USD_PER_TB: the price of a TB scanned (a number)."
    )
    _statements: list[QueryStats] = PrivateAttr(default_factory=list)
    _placed: dict[str, str] = PrivateAttr(default_factory=dict)  # table -> location it reads

    @property
    def dialect(self) -> str:
        return "athena"

    def statements_run(self) -> list[QueryStats]:
        """Every statement this instance ran, in order: a build's cost is a slice of it."""
        return self._statements

    def price_per_tb(self) -> float:
        try:
            return float(self.usd_per_tb)
        except ValueError:
            raise ValueError(f"ATHENA_USD_PER_TB={self.usd_per_tb!r}: expected a number") from None

    def settings_problems(self) -> list[str]:
        return athena_problems(
            self.region, self.output_location, self.lake.is_s3, self.database_prefix
        )

    def _cursor(self, arrow: bool = False) -> Any:  # noqa: ANN401 - pyathena's cursors are untyped
        from pyathena import connect

        if not getattr(self, "_settings_passed", False):  # see require_settings
            self.require_settings()

        kwargs: dict[str, Any] = {"work_group": self.work_group, "region_name": self.region}
        if self.output_location:
            kwargs["s3_staging_dir"] = self.output_location
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if arrow:
            from pyathena.arrow.cursor import ArrowCursor

            kwargs["cursor_class"] = ArrowCursor
        return connect(**kwargs).cursor()

    def _qualify(self, sql: str) -> str:
        if not self.database_prefix:
            return sql
        pattern = r"\b(" + "|".join(LAKE_LAYERS) + r")\."
        return re.sub(pattern, lambda m: f"{self.database_prefix}{m.group(1)}.", sql)

    def _run(self, sql: str, arrow: bool = False) -> tuple[Any, QueryStats]:
        cursor = self._cursor(arrow=arrow)
        started = time.monotonic()
        cursor.execute(self._qualify(sql))
        stats = QueryStats(
            "athena",
            cursor.query_id or "",
            time.monotonic() - started,
            cursor.data_scanned_in_bytes,
        )
        self._statements.append(stats)
        return cursor, stats

    def _require_placed(self, bindings: Iterable[tuple[str, str]]) -> None:
        """Athena reads tables, not folders: a binding holds only for a table this engine placed
        at exactly that location; any other would silently read other files, so it is refused."""
        for relation, location in bindings:
            if self._placed.get(relation) != location:
                raise ValueError(
                    f"Athena cannot bind {relation} to lake location {location!r}: no table this "
                    "engine created, registered or published reads exactly those files"
                )

    def query(self, sql: str, bindings: Bindings | None = None) -> pa.Table:
        self._require_placed((bindings or {}).items())
        cursor, _ = self._run(sql, arrow=True)
        return cursor.as_arrow()

    def segment_checksums(
        self,
        relation: str,
        schema: pa.Schema,
        segment_column: str,
        location: str | None = None,
        files: list[str] | None = None,
    ) -> Segments:
        """`files`: only rows of these lake keys (a run's snapshot) are read, whatever the
        table's location holds by the time Athena lists it."""
        self._require_placed([(relation, location)] if location is not None else [])
        if files is not None:
            paths = ", ".join(quote_literal(self.lake.uri(k)) for k in files)
            relation = f'(SELECT * FROM {relation} WHERE "$path" IN ({paths})) AS snapshot'
        cursor, _ = self._run(segment_checksum_sql("athena", relation, schema, segment_column))
        return segments_from_rows(cursor.fetchall())

    def create_table_as(
        self, table: str, sql: str, location: str, partitioned_by: list[str] | None = None
    ) -> QueryStats:
        self.lake.delete_prefix(location)  # CTAS needs an empty external_location
        self._run(f"DROP TABLE IF EXISTS {table}")
        props = [
            "format = 'PARQUET'",
            "write_compression = 'SNAPPY'",
            f"external_location = {quote_literal(self.lake.uri(location) + '/')}",
        ]
        if partitioned_by:
            props.append(
                "partitioned_by = ARRAY[" + ", ".join(map(quote_literal, partitioned_by)) + "]"
            )
        _, stats = self._run(f"CREATE TABLE {table} WITH ({', '.join(props)}) AS\n{sql}")
        self._placed[table] = location
        return stats

    def register_external(
        self, table: str, location: str, schema: pa.Schema, partitioned_by: list[str] | None = None
    ) -> None:
        partitioned_by = partitioned_by or []
        cols = ", ".join(
            f"{quote_ddl_ident(f.name)} {lake_types.athena_type(f.type, f.name)}"
            for f in schema
            if f.name not in partitioned_by
        )
        parts = ", ".join(f"{quote_ddl_ident(c)} bigint" for c in partitioned_by)
        ddl = f"CREATE EXTERNAL TABLE IF NOT EXISTS {table} ({cols}) "
        if parts:
            ddl += f"PARTITIONED BY ({parts}) "
        ddl += f"STORED AS PARQUET LOCATION {quote_literal(self.lake.uri(location) + '/')}"
        self._run(ddl)
        if parts:
            self._run(f"MSCK REPAIR TABLE {table}")
        self._placed[table] = location

    def publish(self, table: str, location: str) -> None:
        """Repoint `table` at the new version folder (create it on the first publish)."""
        build_table = f"{table}__build"
        try:
            where = quote_literal(self.lake.uri(location) + "/")
            self._run(f"ALTER TABLE {table} SET LOCATION {where}")
        except Exception:  # noqa: BLE001 - Athena reports a missing table as a generic error
            cursor, _ = self._run(f"SHOW CREATE TABLE {build_table}")
            ddl = "\n".join(row[0] for row in cursor.fetchall())
            ddl = ddl.replace(build_table.split(".")[-1], table.split(".")[-1], 1)
            self._run(ddl)
        self._placed[table] = location


def _satisfy_protocol(duck: DuckDBEngine, athena: AthenaEngine) -> tuple[SqlEngine, SqlEngine]:
    """Never called: the type checker fails here if either engine's signatures drift."""
    return duck, athena
