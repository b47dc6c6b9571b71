"""What one sync run fetches besides the data, traced (tests/support/sync_trace.py says what
each count means; tests/test_sync_trace.py pins them).

    uv run python benchmarks/sync_trace.py --json [--table carrier_daily_performance]

Builds the table's lake and copy first (scale 1, a throwaway embedded PostgreSQL); progress goes
to stderr, stdout holds only the JSON result. Counts, not timings: they do not depend on load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.sync_trace import DEFAULT_TABLE, build, log, trace_runs  # noqa: E402


def run(args: argparse.Namespace) -> dict:
    from resources import embedded_pg

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="synctrace-")))
        url = stack.enter_context(embedded_pg.throwaway(workdir / "pg"))
        log(f"building gold.{args.table} at scale 1 ...")
        lake, serving = build(workdir, url, args.table)
        return trace_runs(lake, serving, args.table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--table", default=DEFAULT_TABLE, help=f"a Gold table ({DEFAULT_TABLE})")
    result = run(parser.parse_args(argv))
    print(json.dumps(result, indent=None if "--json" in (argv or sys.argv) else 2))


if __name__ == "__main__":
    main()
