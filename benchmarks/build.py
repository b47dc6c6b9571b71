"""How long the README's build takes against the work its steps do.

Runs the quick start's build command, `dg launch --assets '*'`, three times on a throwaway lake,
embedded PostgreSQL and DAGSTER_HOME (with the project's local instance file):

- `cold`: nothing built yet;
- `noop`: the same again, nothing changed (no new Gold version, nothing copied);
- `one_table`: one Gold table's SQL changed (`airport_daily_weather` rounds its wind speed), on a
  copy of the code location: that table gets a new version and its copy is reloaded, the rest is
  left alone.

For each: `wall_s` (the command, from start to exit), `steps_s` (the steps' own time, the sum of
STEP_START -> STEP_SUCCESS/FAILURE read from the instance), `steps_share` (steps / wall),
`outside_s` (wall - steps) and where it went (`outside`: from the command's start to the run's
first event, i.e. process start, imports, instance, definitions, creating the run; from there
to the first step; between steps; after the last step; from the run's last event to the
process's exit), `events` (what the run wrote to the event log) and `cpu_s` (the command's
user + sys time: on a busy machine, wall is mostly waiting for a CPU).
Then goldctl's `--help` and `status` (median of 3). Every child process runs under a time limit
and its process group is killed at the limit.

    uv run python benchmarks/build.py --json [--scale-years N]

Progress goes to stderr; stdout holds only the JSON result.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.util import cache_from_source, find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_INSTANCE = ROOT / "deploy" / "dagster.local.yaml"
CHANGED_TABLE = "airport_daily_weather"
SQL_EDIT = (
    "MAX(w.wind_speed_mph) AS wind_speed_mph",
    "ROUND(MAX(w.wind_speed_mph), 1) AS wind_speed_mph",
)
BUILD = ["dg", "launch", "--assets", "*"]
LIMIT_S = 600


def log(message: str) -> None:
    print(f"[build] {message}", file=sys.stderr, flush=True)


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bounded(
    cmd: list[str], env: dict, limit_s: float = LIMIT_S, cwd: Path = ROOT
) -> tuple[int, float, str]:
    """(exit code, wall seconds, output tail) of `cmd`; its process group killed at the limit."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return -9, time.perf_counter() - started, f"killed after {limit_s:.0f} s\n{out[-2000:]}"
    return proc.returncode, time.perf_counter() - started, out[-2000:]


def run_phases(dagster_home: Path, started: float, ended: float) -> dict:
    """The newest run of the instance, read from its events: status, the steps' own time, and
    where the rest of the command's wall time went (`started`/`ended`: the command's epoch)."""
    from dagster import DagsterEventType, DagsterInstance

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with DagsterInstance.get() as instance:
        [record] = instance.get_run_records(limit=1)
        entries = list(instance.all_logs(record.dagster_run.run_id))
    began, steps, gaps, last_end = {}, {}, 0.0, None
    for entry in entries:
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            began[entry.step_key] = entry.timestamp
            if last_end is not None:
                gaps += entry.timestamp - last_end
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            steps[entry.step_key] = round(entry.timestamp - began[entry.step_key], 3)
            last_end = entry.timestamp
    first_step = min(began.values())
    return {
        "run_status": record.dagster_run.status.value,
        "steps_s": sum(steps.values()),
        "per_step_s": steps,
        "events": len(entries),
        # outside the steps: process start, imports, instance, definitions, creating the run
        "outside": {
            "to_run_created_s": round(entries[0].timestamp - started, 2),
            "run_start_s": round(first_step - entries[0].timestamp, 2),  # planned events, resources
            "between_steps_s": round(gaps, 2),
            "run_end_s": round(entries[-1].timestamp - last_end, 2),
            "exit_s": round(ended - entries[-1].timestamp, 2),  # the process ending
        },
    }


def build(name: str, env: dict, home: Path, project: Path = ROOT) -> dict:
    cpu_before = children_cpu_s()
    started = time.time()
    code, wall, tail = bounded(BUILD, env, cwd=project)
    ended = time.time()
    cpu = children_cpu_s() - cpu_before
    if code != 0:
        raise RuntimeError(f"{name}: `{' '.join(BUILD)}` exited {code}:\n{tail}")
    run = run_phases(home, started, ended)
    steps = run["steps_s"]
    log(f"{name}: wall {wall:.1f} s, steps {steps:.1f} s ({run['run_status']}); {run['outside']}")
    return {
        "wall_s": round(wall, 2),
        "steps_s": round(steps, 2),
        "steps_share": round(steps / wall, 3),
        "outside_s": round(wall - steps, 2),
        "cpu_s": round(cpu, 2),  # user + sys of the command: what a quiet machine would wait
        "outside": run["outside"],
        "events": run["events"],
        "run_status": run["run_status"],
        "per_step_s": run["per_step_s"],
    }


def lake_versions(lake: Path) -> dict[str, int]:
    gold = lake / "gold"
    return {t.name: len(list(t.glob("version=*"))) for t in sorted(gold.iterdir()) if t.is_dir()}


def rds_actions(home: Path) -> dict[str, str]:
    """What the newest run's sync did per table ("loaded" / "unchanged"), from its metadata."""
    from dagster import DagsterEventType, DagsterInstance

    os.environ["DAGSTER_HOME"] = str(home)
    with DagsterInstance.get() as instance:
        [record] = instance.get_run_records(limit=1)
        actions = {}
        for entry in instance.all_logs(
            record.dagster_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
        ):
            mat = entry.asset_materialization
            if mat.asset_key.path[0] == "rds" and "action" in mat.metadata:
                actions[mat.asset_key.path[-1]] = mat.metadata["action"].value
        return actions


def median_wall(cmd: list[str], env: dict, runs: int = 3) -> float:
    walls = []
    for _ in range(runs):
        code, wall, tail = bounded(cmd, env, 120)
        if code not in (0, 3):
            raise RuntimeError(f"`{' '.join(cmd)}` exited {code}:\n{tail}")
        walls.append(wall)
    return round(statistics.median(walls), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object (default)")
    parser.add_argument(
        "--scale-years",
        type=int,
        default=None,
        help="PLATFORM_SCALE_YEARS for the builds (default: the project's, 1): the steps grow "
        "with the data, Dagster's fixed cost per run does not",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="build-bench-"))
    home, lake, code = work / "dagster_home", work / "lake", work / "code"
    home.mkdir()
    shutil.copy(LOCAL_INSTANCE, home / "dagster.yaml")
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("RDS_URL", "SQL_ENGINE")},
        "DAGSTER_HOME": str(home),
        "LAKE_URL": str(lake),
        "EMBEDDED_PGDATA": str(work / "pg"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if args.scale_years is not None:
        env["PLATFORM_SCALE_YEARS"] = str(args.scale_years)
    bin_dir = Path(sys.executable).parent
    result: dict = {
        "command": " ".join(BUILD),
        "cpus": os.cpu_count(),
        "scale_years": int(env.get("PLATFORM_SCALE_YEARS", "1")),
        # without (PYTHONDONTWRITEBYTECODE and no `uv sync --compile-bytecode`) every command
        # compiles Dagster again: seconds more per build
        "bytecode_cached": Path(cache_from_source(find_spec("dagster").origin)).exists(),
    }
    try:
        result["load_average_before"] = os.getloadavg()[0]
        result["cold"] = build("cold", env, home)
        result["noop"] = build("noop", env, home)
        before = lake_versions(lake)
        result["noop"]["new_gold_versions"] = sum(before.values()) - len(before)
        result["noop"]["rds"] = rds_actions(home)

        # the project as a user's checkout with one edit (dg loads the code from its folder)
        for part in ("platform_assets", "resources"):
            shutil.copytree(ROOT / part, code / part, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", code / "pyproject.toml")
        sql = code / "platform_assets" / "sql" / "gold" / f"{CHANGED_TABLE}.sql"
        text = sql.read_text()
        if SQL_EDIT[0] not in text:
            raise RuntimeError(f"{sql.name} no longer contains {SQL_EDIT[0]!r}: update SQL_EDIT")
        sql.write_text(text.replace(*SQL_EDIT))
        result["one_table"] = build("one_table", env, home, project=code)
        after = lake_versions(lake)
        result["one_table"]["new_gold_versions"] = {
            t: after[t] - before.get(t, 0) for t in after if after[t] != before.get(t, 0)
        }
        result["one_table"]["rds"] = rds_actions(home)

        result["goldctl_help_s"] = median_wall([str(bin_dir / "goldctl"), "--help"], env)
        result["goldctl_status_s"] = median_wall([str(bin_dir / "goldctl"), "status"], env)
        result["load_average_after"] = os.getloadavg()[0]
    finally:
        bounded([str(bin_dir / "goldctl"), "stop-db"], env, 120)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
