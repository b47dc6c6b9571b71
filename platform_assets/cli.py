"""`goldctl`: the Gold layer from a terminal.

goldctl status [--json]   lake version, RDS version, rows on both sides, lag, in sync, owner,
                          clock skew, orphans; each copy's size and its next sync's headroom
goldctl rds-url           the serving DB's URL (psql "$(goldctl rds-url)")
goldctl sync [TABLE ...] [--force] [--month YYYY-MM]   run the sync protocol outside Dagster
goldctl drop-orphan TABLE remove a copy no spec declares (renamed or removed) and its ledger rows
goldctl take-over TABLE --from DEPLOYMENT   hand a copy to this deployment (GOLD_DEPLOYMENT)
goldctl stop-db           stop the embedded PostgreSQL (its data stays in .local/pg)
"""

# Only the standard library at module level: `goldctl --help` must not pay for Dagster, pyarrow
# or psycopg (seconds of imports). Each command imports what it uses; `status`, `rds-url` and
# `stop-db` use the plain (Dagster-free) lake and database, `sync` the Dagster resources.
# A new command: a `cmd_<name>(args)` (or `(args, lake, engine, serving)` with
# `needs_resources=True`) and one entry in `add_commands`.

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from platform_assets.insync import TableStatus
    from resources.dagster_resources import LakeStorage, ServingDatabase
    from resources.sql_engine import SqlEngine


BUILD_COMMAND = "uv run dg launch --assets '*'"  # the README's build (the dashboard says it too)
SETTING_ERROR_EXIT = 2


def cmd_status(args: argparse.Namespace) -> int:
    from platform_assets import settings
    from platform_assets.lake.tables import GoldLake
    from platform_assets.serving import footprint, orphans, reader
    from platform_assets.serving.ownership import Deployment
    from platform_assets.specs import GOLD_TABLES
    from platform_assets.status import status_report

    settings.check_environment()
    lake, serving = settings.plain_lake(), settings.plain_serving()
    me, declared = Deployment.of(serving, lake), [spec.name for spec in GOLD_TABLES]
    with serving.connect(autocommit=True) as conn:
        statuses, facts = status_report(list(GOLD_TABLES), GoldLake(lake), conn, me, declared)
        orphans.notice(conn, facts.orphans, serving.dashboard_role, declared)
        storage = footprint.storage_report(
            conn, declared, serving.storage_budget_gb, serving.storage_gb
        )
        exposed = reader.exposures(conn, serving.dashboard_role)
    built = any(s.lake_version or s.rds_version for s in statuses)
    if args.json:
        report = {
            "built": built,
            "deployment": me.name,
            "tables": [s.to_dict() for s in statuses],
            "orphans": [o.to_dict() for o in facts.orphans],
            "storage": storage.to_dict(),
            "dashboard_role": {"name": serving.dashboard_role, "can_still": exposed},
        }
        print(json.dumps(report, indent=2, default=str))
    else:
        print(_format_table(statuses))
        for s in statuses:
            if not s.in_sync:
                print(f"  {s.table}: {s.reason}")
            if s.clock_skew:
                print(f"  {s.table}: {s.clock_skew}")
        for o in facts.orphans:
            print(f"  {o.describe()}")
        print(footprint.format_report(storage))
        print(reader.status_line(serving.dashboard_role, exposed))
    if not built:
        print(f"goldctl: the platform is not built yet: run `{BUILD_COMMAND}`", file=sys.stderr)
    ours = [s for s in statuses if s.severity != "foreign"]
    return 0 if all(s.in_sync for s in ours) and not facts.orphans else 3


def _format_table(statuses: list[TableStatus]) -> str:
    headers = ("table", "lake version", "rds version", "lake rows", "rds rows", "lag s", "state")
    rows = [
        (
            s.table,
            s.lake_version or "-",
            s.rds_version or "-",
            "-" if s.lake_rows is None else str(s.lake_rows),
            "-" if s.rds_rows is None else str(s.rds_rows),
            f"{s.lag_seconds:.0f}",
            "in sync" if s.in_sync else _state(s),
        )
        for s in statuses
    ]
    widths = [max(len(r[i]) for r in (headers, *rows)) for i in range(len(headers))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i in (3, 4, 5) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in (headers, *rows)
    )


def _state(s: TableStatus) -> str:
    if s.severity == "foreign":
        return f"owned by {s.owner}"
    return f"{s.severity.upper()} ({s.waiting})" if s.waiting else s.severity.upper()


def cmd_drop_orphan(args: argparse.Namespace) -> int:
    """Drop one orphan (a copy or ledger rows no spec declares) and its ledger rows."""
    from platform_assets import settings
    from platform_assets.serving import orphans
    from platform_assets.serving.ownership import Deployment
    from platform_assets.specs import GOLD_BY_NAME

    lake, serving = settings.plain_lake(), settings.plain_serving()
    with serving.connect(autocommit=True) as conn:
        try:
            gone = orphans.drop(conn, args.table, list(GOLD_BY_NAME), Deployment.of(serving, lake))
        except orphans.NotAnOrphan as exc:
            print(f"goldctl: {exc}", file=sys.stderr)
            return 2
    what = "its copy and " if gone.has_copy else ""
    print(f"dropped orphan {args.table}: {what}{gone.ledger_rows} ledger row(s)")
    return 0


def cmd_take_over(args: argparse.Namespace) -> int:
    """Hand a copy from the deployment that owns it to this one, on purpose."""
    from platform_assets import settings
    from platform_assets.serving import ledger
    from platform_assets.serving.ownership import Deployment, take_over
    from platform_assets.specs import GOLD_BY_NAME

    if args.table not in GOLD_BY_NAME:
        known = ", ".join(GOLD_BY_NAME)
        print(f"goldctl: unknown table {args.table!r}; known: {known}", file=sys.stderr)
        return 2
    lake, serving = settings.plain_lake(), settings.plain_serving()
    me = Deployment.of(serving, lake)
    with serving.connect(autocommit=True) as conn:
        ledger.bootstrap(conn, serving.dashboard_role)
        previous = take_over(conn, args.table, me, args.previous)
    was = previous.deployment if previous else "nobody"
    print(
        f"gold.{args.table} now belongs to deployment {me.name!r} (lake {me.lake_location}), "
        f"was {was!r}; its next sync loads this deployment's lake"
    )
    return 0


def cmd_rds_url(args: argparse.Namespace) -> int:
    from platform_assets import settings

    serving = settings.plain_serving()
    print(serving.dashboard_url() if args.dashboard else serving.conninfo())
    return 0


def cmd_sync(
    args: argparse.Namespace, lake: LakeStorage, engine: SqlEngine, serving: ServingDatabase
) -> int:
    """Sync each table; one that fails is reported in one line and the others go on. Exit 0, or
    the highest of the failures' exit codes (errors.py: 1 refused or transient, 2 usage or
    settings)."""
    from platform_assets.lake.tables import GoldLake
    from platform_assets.serving.errors import SyncError
    from platform_assets.serving.protocol import sync_table
    from platform_assets.specs import GOLD_BY_NAME, GOLD_TABLES

    unknown = [t for t in args.tables if t not in GOLD_BY_NAME]
    if unknown:
        print(
            f"unknown table(s): {', '.join(unknown)}; known: {', '.join(GOLD_BY_NAME)}",
            file=sys.stderr,
        )
        return 2
    code = 0
    for spec in [GOLD_BY_NAME[t] for t in args.tables] or GOLD_TABLES:
        try:
            result = sync_table(
                spec, GoldLake(lake), engine, serving, force=args.force, months=args.month
            )
            print(json.dumps({"table": spec.name, **result.metadata()}))
        except SyncError as failure:
            print(f"goldctl: {failure}", file=sys.stderr)
            code = max(code, failure.exit_code)
        except Exception:  # a bug: its traceback, and the other tables still go on
            print(f"goldctl: gold.{spec.name}: unexpected error", file=sys.stderr)
            traceback.print_exc()
            code = max(code, 1)
    return code


def cmd_stop_db(args: argparse.Namespace) -> int:
    """Needs no resources: opening them would start the server it is asked to stop."""
    from platform_assets import settings
    from resources import embedded_pg

    serving = settings.plain_serving()  # the server is started only by conninfo(), never here
    if serving.url:
        print("goldctl: RDS_URL is set; only the embedded server can be stopped", file=sys.stderr)
        return 2
    try:
        stopped = embedded_pg.stop(serving.embedded_pgdata)
    except embedded_pg.EmbeddedPgError as exc:
        print(f"goldctl: {exc}", file=sys.stderr)
        return 1
    print(f"{'stopped' if stopped else 'not running'}: {serving.embedded_pgdata}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser("status", help="per Gold table: lake vs RDS version, rows, lag")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)
    url = sub.add_parser("rds-url", help="print the serving database URL")
    url.add_argument("--dashboard", action="store_true", help="the read-only dashboard role's URL")
    url.set_defaults(func=cmd_rds_url)
    sync = sub.add_parser("sync", help="copy lake Gold tables into RDS now")
    sync.add_argument("tables", nargs="*", help="tables (default: all)")
    sync.add_argument("--force", action="store_true", help="publish empty or shrunken tables")
    sync.add_argument(
        "--month", action="append", default=[], help="partitioned tables: reload YYYY-MM (repeat)"
    )
    sync.set_defaults(func=cmd_sync, needs_resources=True)
    drop = sub.add_parser("drop-orphan", help="drop a copy no spec declares, and its ledger rows")
    drop.add_argument("table")
    drop.set_defaults(func=cmd_drop_orphan)
    take = sub.add_parser("take-over", help="hand a copy over to this deployment, on purpose")
    take.add_argument("table")
    take.add_argument(
        "--from", dest="previous", required=True, help="the deployment that owns it now"
    )
    take.set_defaults(func=cmd_take_over)
    stop = sub.add_parser("stop-db", help="stop the embedded PostgreSQL (data kept)")
    stop.set_defaults(func=cmd_stop_db)


def run(args: argparse.Namespace) -> int:
    """The command, with the Dagster resources opened for it when it asks for them."""
    if not getattr(args, "needs_resources", False):
        return args.func(args)
    from platform_assets import settings

    with settings.open_resources() as res:
        return args.func(args, res["lake"], res["engine"], res["serving"])


def report_error(args: argparse.Namespace, exc: BaseException | str, exit_code: int) -> int:
    """One line on stderr; with `--json` also `{"error", "setting"}` on stdout (pipes parse)."""
    print(f"goldctl: {exc}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"error": str(exc), "setting": getattr(exc, "setting", None)}))
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="goldctl", description=(__doc__ or "").splitlines()[0])
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `goldctl status | head` ends quietly
    try:
        return run(args)
    except (LookupError, ValueError) as exc:  # settings (SettingError is a ValueError)
        return report_error(args, exc, SETTING_ERROR_EXIT)
    except Exception as exc:
        if not getattr(args, "json", False):
            raise
        return report_error(args, f"{type(exc).__name__}: {exc}", 1)


if __name__ == "__main__":
    sys.exit(main())
