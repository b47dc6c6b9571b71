"""Staleness: how long the RDS copy lags after someone changes a Gold table outside Dagster.

README.md promises that "lag is never silent" and short: `lake_change_sensor` (every 15 s, on by
default) notices a change made outside Dagster and a sync run brings the RDS copy back. This
benchmark measures exactly what a user sees, under a real `dagster dev` (webserver + daemon):

1. start `dagster dev` on temporary folders (DAGSTER_HOME, a local lake, a throwaway embedded
   PostgreSQL as RDS_URL, a webhook receiver on loopback as ALERT_WEBHOOK_URL);
2. build the whole platform through the GraphQL API (what the UI's Materialize button does);
3. `--repeats` times: add one Parquet file by hand to a Gold table's current version folder (what
   an analyst's `INSERT INTO` leaves) and time until the table is in sync again, judged by
   `platform_assets.status.table_status` (the function behind `goldctl status`), polled every
   0.25 s; `goldctl status --json` confirms at the end.

    uv run python benchmarks/staleness.py --json [--repeats 5] [--table airport_daily_weather]
    uv run python benchmarks/staleness.py --json --quick     # one change (about 2 minutes)

Expect roughly uniform(0, sensor interval) + run start-up + the sync itself. Progress goes to
stderr; stdout holds only the result.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.dagster_dev import DagsterDev, dev_env, goldctl_status
from tests.support.lake_edits import add_outside_file, table_in_sync
from tests.support.webhook import Receiver

if TYPE_CHECKING:
    from resources.storage import LakeStorage

DEFAULT_TABLE = "airport_daily_weather"
DEFAULT_REPEATS = 5
P95_TARGET_S = 20.0
MAX_REPEATS = 20
SYNC_TIMEOUT_S = 120  # one outside change until in sync
POLL_S = 0.25


def log(message: str) -> None:
    print(f"[staleness] {message}", file=sys.stderr, flush=True)


def wait_in_sync(
    lake: LakeStorage, rds_url: str, table: str, timeout: float = SYNC_TIMEOUT_S
) -> float:
    """Seconds until `table` is in sync again (polled every POLL_S)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if table_in_sync(lake, rds_url, table).in_sync:
            return time.monotonic() - started
        time.sleep(POLL_S)
    raise TimeoutError(f"gold.{table} not in sync {timeout:.0f} s after an outside change")


# ---- the benchmark --------------------------------------------------------------------------


def run_phases(dev: DagsterDev, table: str, state_id: str, changed_at: float) -> dict:
    """Where the time went: change -> lag shown and sensor's run request -> run start -> end."""
    shown = dev.lag_shown_at(table, changed_at)
    phases = {"lag_visible_s": round(shown - changed_at, 2) if shown else None}
    syncs = dev.sync_runs(table, state_id)
    sync = syncs[-1] if syncs else {}  # the first one requested (newest first)
    if sync.get("creationTime") and sync.get("startTime") and sync.get("endTime"):
        phases.update(
            to_run_request_s=round(sync["creationTime"] - changed_at, 2),
            run_start_s=round(sync["startTime"] - sync["creationTime"], 2),
            run_s=round(sync["endTime"] - sync["startTime"], 2),
        )
    return phases


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (of 5 values: the largest)."""
    ranked = sorted(values)
    return ranked[max(0, -(-95 * len(ranked) // 100) - 1)]


def median_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def sensor_interval_s() -> int:
    from platform_assets.definitions import defs

    return defs.resolve_sensor_def("lake_change_sensor").minimum_interval_seconds


def run(args: argparse.Namespace) -> dict:
    from platform_assets.definitions import ASSET_KEYS
    from resources import embedded_pg
    from resources.storage import LakeStorage

    started = time.monotonic()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="staleness-bench-") as tmp:
        workdir = Path(tmp)
        lake = LakeStorage(url=str(workdir / "lake"))
        receiver = Receiver()
        with embedded_pg.throwaway(workdir / "pg") as rds_url:
            env = dev_env(workdir / "dagster_home", lake.url, rds_url, receiver.url)
            dev = DagsterDev(env, workdir / "dagster_dev.log")
            try:
                dev.start()
                startup = dev.wait_ready()
                log(f"dagster dev ready on port {dev.port} after {startup:.1f} s")
                build_started = time.monotonic()
                run_id = dev.launch([key.path for key in ASSET_KEYS])
                status = dev.wait_run(run_id)
                build = time.monotonic() - build_started
                if status != "SUCCESS":
                    raise RuntimeError(f"the platform build ended {status}:\n{dev.log_tail()}")
                log(f"platform built through GraphQL in {build:.1f} s (run {run_id[:8]})")
                wait_in_sync(lake, rds_url, args.table, timeout=60)

                runs = []
                for number in range(args.repeats):
                    rows, key = add_outside_file(lake, args.table)
                    changed_at = time.time()
                    state_id = table_in_sync(lake, rds_url, args.table).lake_version
                    seconds = wait_in_sync(lake, rds_url, args.table)
                    sync_runs = dev.sync_runs(args.table, state_id)
                    for sync_run in sync_runs:  # its checks run after the swap: let them end
                        dev.wait_run(sync_run["runId"], timeout=SYNC_TIMEOUT_S)
                    runs.append(
                        {
                            "seconds": round(seconds, 2),
                            "rows_added": rows,
                            "lake_version": state_id,
                            "sync_runs": len(sync_runs),
                            **run_phases(dev, args.table, state_id, changed_at),
                        }
                    )
                    log(
                        f"change {number + 1}: in sync after {seconds:.1f} s ({key}); "
                        f"{runs[-1]} (load {os.getloadavg()[0]:.1f})"
                    )
                code, report = goldctl_status(env)
                if code != 0:
                    raise RuntimeError(f"goldctl status exited {code}: {report}")
            finally:
                dev.stop()
                receiver.close()
    times = [r["seconds"] for r in runs]
    alerts = receiver.messages()
    return {
        "benchmark": "staleness",
        "table": args.table,
        "repeats": args.repeats,
        "median_s": round(statistics.median(times), 2),
        "p95_s": round(p95(times), 2),
        "p95_target_s": P95_TARGET_S,
        "p95_met": p95(times) <= P95_TARGET_S,
        "max_s": round(max(times), 2),
        "phases_median_s": {
            k: median_of(runs, k)
            for k in ("lag_visible_s", "to_run_request_s", "run_start_s", "run_s")
        },
        "load_average_1_5_15": {
            "start": [round(x, 2) for x in load_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        "min_s": round(min(times), 2),
        "runs": runs,
        "sensor_interval_s": sensor_interval_s(),
        "startup_s": round(startup, 1),
        "build_s": round(build, 1),
        "goldctl_all_in_sync": code == 0,
        "alerts": {
            "failing": sum(1 for a in alerts if a.get("status") == "failing"),
            "recovered": sum(1 for a in alerts if a.get("status") == "recovered"),
        },
        "notes": {
            "seconds": "outside Parquet file written -> table_status(...).in_sync (goldctl's "
            f"verdict), polled every {POLL_S} s",
            "expected": "about uniform(0, sensor interval) + run start-up + the sync itself",
            "phases": "lag_visible_s: change -> the failing in_sync_with_lake evaluation the "
            "sensor records on the RDS asset (what its page shows); to_run_request_s: change -> "
            "sensor's run created; run_start_s: created -> started (process start); run_s: "
            "start -> end, checks included (after the swap)",
            "p95_s": "nearest rank: of 5 changes, the slowest",
        },
        "seconds_total": round(time.monotonic() - started, 1),
    }


def print_human(result: dict) -> None:
    print(f"staleness of rds/gold/{result['table']} after an outside change")
    spread = f"p95 {result['p95_s']:.1f} s, max {result['max_s']:.1f} s"
    print(f"  median {result['median_s']:.1f} s, {spread}")
    seconds = ", ".join(f"{r['seconds']:.1f}" for r in result["runs"])
    print(f"  runs: {seconds} s")
    print(f"  sensor interval {result['sensor_interval_s']} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from platform_assets.specs import GOLD_BY_NAME

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=None, help=f"changes ({DEFAULT_REPEATS})")
    parser.add_argument("--table", default=DEFAULT_TABLE, choices=sorted(GOLD_BY_NAME))
    parser.add_argument("--quick", action="store_true", help="one change (smoke test)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else DEFAULT_REPEATS)
    if not 1 <= args.repeats <= MAX_REPEATS:
        parser.error(f"--repeats must be within 1..{MAX_REPEATS}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_human(result)


if __name__ == "__main__":
    main()
