"""What a sync costs by what changed: nothing, one month, the table's shape, everything.

The platform is built by the real assets at `--scale-years` (default 10: 120 months) on a
throwaway embedded PostgreSQL, then, for the month-partitioned `carrier_daily_performance` and
the whole-table `airport_daily_weather`, in this order:

- `noop`: a sync of an unchanged lake state (the in-sync rule says so; nothing is copied);
- `one_month`: a Parquet file with a few rows of one month added by hand (only that month is
  copied and published);
- `schema_change`: every file rewritten with one more column (the copy is rebuilt in the new
  shape and published as one unit);
- `full_reload`: a forced sync (every unit copied again).

A reader on its own connection sums a column in a loop throughout: `reader.max_ms` is the
longest single query, which includes any wait on a publish's locks; `bad_reads` counts
errors and sums that are neither the old nor the new total.

    uv run python benchmarks/sync_units.py --json [--quick] [--scale-years N]

Progress goes to stderr; stdout holds only the JSON result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from platform_assets.lake.tables import GoldLake  # noqa: E402
from platform_assets.serving.protocol import sync_table  # noqa: E402
from platform_assets.specs import GOLD_BY_NAME  # noqa: E402
from resources import embedded_pg  # noqa: E402
from resources.sql_engine import DuckDBEngine  # noqa: E402
from tests.support.copies import Reader  # noqa: E402
from tests.support.lake_edits import add_outside_file  # noqa: E402
from tests.support.platform import build_platform  # noqa: E402

if TYPE_CHECKING:
    from resources.serving_db import ServingDatabase
    from resources.storage import LakeStorage

TABLES = ("carrier_daily_performance", "airport_daily_weather")


def log(message: str) -> None:
    print(f"[sync_units] {message}", file=sys.stderr, flush=True)


def add_column(lake: LakeStorage, table: str) -> None:
    """Rewrite every file of the current version with one more column (as a CTAS would)."""
    state = GoldLake(lake).current_state(table)
    for key in state.parquet_keys:
        with lake.filesystem.open_input_file(lake.path(key)) as f:
            data = pq.read_table(f)
        data = data.append_column("bench_extra", pa.array([1] * len(data), pa.int64()))
        with lake.filesystem.open_output_stream(lake.path(key)) as out:
            pq.write_table(data, out)


def total(url: str, table: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return int(conn.execute(f"SELECT sum(flights) FROM gold.{table}").fetchone()[0] or 0)


def measure(lake: LakeStorage, serving: ServingDatabase, table: str, url: str) -> dict:
    spec, gold, engine = GOLD_BY_NAME[table], GoldLake(lake), DuckDBEngine(lake=lake)
    out = {}
    steps = [
        ("noop", None, {}),
        ("one_month", lambda: add_outside_file(lake, table, rows=5), {}),
        ("schema_change", lambda: add_column(lake, table), {}),
        ("full_reload", None, {"force": True}),
    ]
    for name, change, kwargs in steps:
        before = total(url, table)
        if change:
            change()
        reader = Reader(url, table, pause_s=0.002)
        reader.start()
        started = time.monotonic()
        result = sync_table(spec, gold, engine, serving, log=lambda _m: None, **kwargs)
        seconds = time.monotonic() - started
        reader.stop.set()
        reader.join(timeout=30)
        after = total(url, table)
        bad = sum(1 for s in reader.sums if s not in (before, after)) + len(reader.errors)
        out[name] = {
            "seconds": round(seconds, 3),
            "action": result.action,
            "units_reloaded": len(result.partitions_reloaded)
            if result.partitions_reloaded is not None
            else int(result.action == "loaded"),
            "rows": result.row_count,
            "reader_max_ms": round(max(reader.ms, default=0.0), 1),
            "reader_queries": len(reader.ms),
            "bad_reads": bad,
        }
        log(f"{table} {name}: {out[name]}")
    return out


def run(args: argparse.Namespace) -> dict:
    scale = args.scale_years or (1 if args.quick else 10)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="syncunits-")))
        url = stack.enter_context(embedded_pg.throwaway(workdir / "pg"))
        lake, serving = build_platform(workdir, url, scale)
        with psycopg.connect(url, autocommit=True) as conn:
            months = conn.execute(
                "SELECT count(*) FROM platform.sync_ledger "
                "WHERE table_name = 'carrier_daily_performance' AND partition_key <> ''"
            ).fetchone()[0]
        results = {table: measure(lake, serving, table, url) for table in TABLES}
    return {"scale_years": scale, "months": months, "tables": results}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="scale 1 (smoke test)")
    parser.add_argument("--scale-years", type=int, default=None, help="synthetic years (10)")
    result = run(parser.parse_args(argv))
    print(json.dumps(result, indent=None if "--json" in (argv or sys.argv) else 2))


if __name__ == "__main__":
    main()
