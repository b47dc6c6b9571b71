"""The one place where configuration picks the resources (env vars -> ConfigurableResources).

Assets never branch on the environment: they receive a `LakeStorage`, an engine and a
`ServingDatabase`, and these are chosen here. Values are passed as `dagster.EnvVar`, so Dagster
resolves them at run time and never shows them in the UI; unset variables fall back to the
embedded defaults under `.local/`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg

from resources.alerts import AlertNotifier
from resources.serving_db import ServingDatabase
from resources.source import SourceSettings
from resources.sql_engine import AthenaEngine, DuckDBEngine
from resources.storage import LakeStorage

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = PROJECT_ROOT / ".local"
ENGINES = ("duckdb", "athena")


def _env(name: str, default=None):
    """`EnvVar(name)` when the variable is set, else the default (resolved at run time)."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def _env_int(name: str, default: int):
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def lake_storage() -> LakeStorage:
    return LakeStorage(
        url=_env("LAKE_URL", str(LOCAL_DIR / "lake")),
        s3_endpoint_url=_env("S3_ENDPOINT_URL"),
        s3_region=_env("AWS_REGION"),
    )


def sql_engine(lake: LakeStorage):
    choice = os.environ.get("SQL_ENGINE", "duckdb").strip().lower()
    if choice not in ENGINES:
        raise ValueError(f"SQL_ENGINE={choice!r}: expected one of {', '.join(ENGINES)}")
    if choice == "athena":
        return AthenaEngine(
            lake=lake,
            region=_env("ATHENA_REGION") or _env("AWS_REGION"),
            work_group=_env("ATHENA_WORKGROUP", "primary"),
            output_location=_env("ATHENA_OUTPUT_LOCATION"),
            endpoint_url=_env("ATHENA_ENDPOINT_URL"),
            database_prefix=_env("ATHENA_DATABASE_PREFIX", ""),
            usd_per_tb=_env("ATHENA_USD_PER_TB", "5"),
        )
    return DuckDBEngine(lake=lake, threads=_env_int("DUCKDB_THREADS", 2))


def serving_database() -> ServingDatabase:
    return ServingDatabase(
        url=_env("RDS_URL"),
        embedded_pgdata=_env("EMBEDDED_PGDATA", str(LOCAL_DIR / "pg")),
        dashboard_role=_env("DASHBOARD_ROLE", "dashboard_reader"),
        storage_budget_gb=_env_int("RDS_STORAGE_BUDGET_GB", 20),
        deployment=_env("GOLD_DEPLOYMENT"),
    )


def build_resources() -> dict:
    lake = lake_storage()
    return {
        "lake": lake,
        "engine": sql_engine(lake),
        "serving": serving_database(),
        "source": SourceSettings(scale_years=_env_int("PLATFORM_SCALE_YEARS", 1)),
        "alerts": AlertNotifier(webhook_url=_env("ALERT_WEBHOOK_URL")),
    }


@contextmanager
def open_resources() -> Iterator[dict]:
    """The configured resources, ready to use outside a Dagster run (goldctl, dashboard, ...)."""
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(resource.process_config_and_initialize_cm())
            for name, resource in build_resources().items()
        }
