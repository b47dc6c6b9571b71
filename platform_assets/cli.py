"""`goldctl`: the Gold layer from a terminal.

goldctl status [--json]   lake version, RDS version, rows on both sides, lag, in sync; each
                          copy's size and its next sync's headroom against the storage budget
goldctl rds-url           the serving DB's URL (psql "$(goldctl rds-url)")
goldctl sync [TABLE ...] [--force] [--month YYYY-MM]   run the sync protocol outside Dagster
goldctl stop-db           stop the embedded PostgreSQL (its data stays in .local/pg)
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback

from platform_assets import settings
from platform_assets.serving import footprint
from platform_assets.specs import GOLD_BY_NAME, GOLD_TABLES
from platform_assets.status import table_statuses
from resources.lake_tables import GoldLake
from resources.serving_db import ServingDbError
from resources.storage import LakeConfigError


def cmd_status(args, lake, engine, serving) -> int:
    gold = GoldLake(lake)
    with serving.connect(autocommit=True) as conn:
        statuses = table_statuses(list(GOLD_TABLES), gold, conn)
        tables = [spec.name for spec in GOLD_TABLES]
        storage = footprint.storage_report(conn, tables, serving.storage_budget_gb)
    built = any(s.lake_version or s.rds_version for s in statuses)
    if args.json:
        report = {
            "built": built,
            "tables": [s.to_dict() for s in statuses],
            "storage": storage.to_dict(),
        }
        print(json.dumps(report, indent=2, default=str))
    else:
        print(_format_table(statuses))
        for s in statuses:
            if not s.in_sync:
                print(f"  {s.table}: {s.reason}")
        print(footprint.format_report(storage))
    if not built:
        print(
            "goldctl: the platform is not built yet: run "
            "`uv run dagster asset materialize --select '*'`",
            file=sys.stderr,
        )
    return 0 if all(s.in_sync for s in statuses) else 3


def _format_table(statuses) -> str:
    headers = ("table", "lake version", "rds version", "lake rows", "rds rows", "lag s", "state")
    rows = [
        (
            s.table,
            s.lake_version or "-",
            s.rds_version or "-",
            "-" if s.lake_rows is None else str(s.lake_rows),
            "-" if s.rds_rows is None else str(s.rds_rows),
            f"{s.lag_seconds:.0f}",
            "in sync" if s.in_sync else s.severity.upper(),
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


def cmd_rds_url(args, lake, engine, serving) -> int:
    print(serving.dashboard_url() if args.dashboard else serving.conninfo())
    return 0


def cmd_sync(args, lake, engine, serving) -> int:
    """Sync each table; one that fails is reported in one line and the others go on. Exit 0, or
    the highest of the failures' exit codes (errors.py: 1 refused or transient, 2 usage or
    settings)."""
    from platform_assets.serving.errors import SyncError
    from platform_assets.serving.protocol import sync_table

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


def cmd_stop_db(args) -> int:
    """Needs no resources: opening them would start the server it is asked to stop."""
    from resources import embedded_pg

    with settings.serving_database().process_config_and_initialize_cm() as serving:
        pass  # env vars resolved; the server is started only by conninfo(), never here
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="goldctl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
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
    sync.set_defaults(func=cmd_sync)
    stop = sub.add_parser("stop-db", help="stop the embedded PostgreSQL (data kept)")
    stop.set_defaults(func=cmd_stop_db, without_resources=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `goldctl status | head` ends quietly
    try:
        if getattr(args, "without_resources", False):
            return args.func(args)
        with settings.open_resources() as res:
            return args.func(args, res["lake"], res["engine"], res["serving"])
    except (ServingDbError, LakeConfigError, LookupError, ValueError) as exc:
        print(f"goldctl: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
