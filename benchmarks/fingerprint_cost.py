"""What exact copies cost: the PostgreSQL side of the fingerprint, and the NUL scan, on the
benchmark table.

The fingerprint renders every value exactly (doubles by their IEEE bits, text length-prefixed,
timestamps to the µs in UTC); the one it replaced rendered doubles as rounded ten-thousandths
and text as is (blind to small changes and to `\\N` vs NULL). Both segment checksum queries run
on the same 1 M-row table (`tests/support/bench_data.gold_like_table`, shaped like
`gold.route_monthly_performance`), interleaved, median reported; the verification of every
sync and every `fingerprint_matches` check runs this query. The NUL scan (`loader.NulScreen`,
run on the batches COPY sends) is timed on the decoded batches against the load it is part of.

    uv run python benchmarks/fingerprint_cost.py --json [--rows N] [--repeats R]

The server is a throwaway embedded PostgreSQL, or `RDS_URL` when set (a dedicated schema,
dropped at the end). Nothing runs in a child process. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.dataset as ds

from platform_assets.identifiers import quote_ident
from platform_assets.lake.fingerprint import segment_checksum_sql
from platform_assets.serving import loader
from tests.support.bench_data import (
    BENCH_SCHEMA,
    drop_bench_schema,
    fresh_table,
    gold_like_table,
    postgres_url,
    write_parquet_files,
)

TABLE = "fingerprint_bench"


def replaced_checksum_sql(relation: str, schema: pa.Schema, segment: str) -> str:
    """The PostgreSQL checksum as it was before exact rendering (the baseline, kept here only)."""
    parts = []
    for f in schema:
        col = quote_ident(f.name)
        if pa.types.is_floating(f.type):
            text = f"CAST(CAST(FLOOR({col} * 10000 + 0.5) AS BIGINT) AS TEXT)"
        elif pa.types.is_timestamp(f.type):
            text = f"TO_CHAR({col}, 'YYYY-MM-DD HH24:MI:SS')"
        else:
            text = f"CAST({col} AS TEXT)"
        parts.append(f"COALESCE({text}, '\\N')")
    row = " || '|' || ".join(parts)
    return (
        f"SELECT SUBSTR(CAST({quote_ident(segment)} AS TEXT), 1, 7) AS segment, COUNT(*), "
        f"SUM((('x' || SUBSTR(MD5({row}), 1, 8))::BIT(32)::BIGINT)) FROM {relation} "
        "GROUP BY 1 ORDER BY 1"
    )


def timed(conn: psycopg.Connection, sql: str) -> float:
    started = time.perf_counter()
    conn.execute(sql).fetchall()
    return time.perf_counter() - started


def run(rows: int, repeats: int) -> dict:
    table = gold_like_table(rows, unique_key=True)
    with tempfile.TemporaryDirectory(prefix="fingerprint-bench-") as tmp:
        workdir = Path(tmp)
        files = write_parquet_files(table, workdir / "parquet")
        dataset = ds.dataset([str(p) for p in files], format="parquet")
        schema = loader.load_schema(dataset.schema)
        with postgres_url(workdir) as (url, server):
            try:
                fresh_table(url, TABLE, schema)
                started = time.perf_counter()
                loaded = loader.load_dataset(url, BENCH_SCHEMA, TABLE, dataset, schema)
                load_s = time.perf_counter() - started
                nul_runs, screen = [], loader.NulScreen(schema, ["month", "origin"])
                decoded = list(loader.batches(dataset, schema))  # as COPY gets them: untimed
                for _ in range(repeats):
                    started = time.perf_counter()
                    assert not any(screen.first_nul(batch) for batch in decoded)
                    nul_runs.append(time.perf_counter() - started)
                relation = f"{quote_ident(BENCH_SCHEMA)}.{quote_ident(TABLE)}"
                queries = {
                    "exact": segment_checksum_sql("postgres", relation, schema, "month"),
                    "replaced": replaced_checksum_sql(relation, schema, "month"),
                }
                runs: dict[str, list[float]] = {name: [] for name in queries}
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"VACUUM ANALYZE {relation}")
                    for sql in queries.values():  # warm the cache for both alike
                        timed(conn, sql)
                    for i in range(repeats):
                        log(f"round {i + 1}/{repeats}")
                        for name, sql in queries.items():
                            runs[name].append(timed(conn, sql))
            finally:
                drop_bench_schema(url)
    exact, replaced = (statistics.median(runs[n]) for n in ("exact", "replaced"))
    nul = statistics.median(nul_runs)
    return {
        "benchmark": "fingerprint_cost",
        "server": server,
        "rows": loaded.rows,
        "repeats": repeats,
        "postgres_checksum_s": {
            "exact": round(exact, 3),
            "replaced": round(replaced, 3),
            "runs": {k: [round(v, 3) for v in vs] for k, vs in runs.items()},
        },
        "exact_vs_replaced": round(exact / replaced, 3),
        "load_s": round(load_s, 3),
        "nul_scan_s": round(nul, 3),
        "nul_scan_vs_load": round(nul / load_s, 3),
    }


def log(message: str) -> None:
    print(f"[fingerprint_cost] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    result = run(args.rows, max(1, min(args.repeats, 20)))
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
