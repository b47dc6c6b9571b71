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
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    from resources.dagster_resources import LakeStorage, ServingDatabase
    from resources.serving_db import PlainServing
    from resources.sql_engine import AthenaEngine, DuckDBEngine
    from resources.storage import PlainLake


PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = PROJECT_ROOT / ".local"
ENGINES = ("duckdb", "athena")

# The settings goldctl's fast commands need, each once: field -> (env var, default, type).
LAKE_SETTINGS = {
    "url": ("LAKE_URL", str(LOCAL_DIR / "lake"), str),
    "s3_endpoint_url": ("S3_ENDPOINT_URL", None, str),
    "s3_region": ("AWS_REGION", None, str),
}
SERVING_SETTINGS = {
    "url": ("RDS_URL", None, str),
    "embedded_pgdata": ("EMBEDDED_PGDATA", str(LOCAL_DIR / "pg"), str),
    "dashboard_role": ("DASHBOARD_ROLE", "dashboard_reader", str),
    "storage_budget": ("RDS_STORAGE_BUDGET_GB", "20", str),  # a number, checked by the resource
    "storage_size": ("RDS_STORAGE_GB", None, str),
    "deployment": ("GOLD_DEPLOYMENT", None, str),
}


@overload
def _env(name: str) -> str | None: ...
@overload
def _env(name: str, default: str) -> str: ...
def _env(name: str, default: str | None = None) -> str | None:
    """`EnvVar(name)` (a str) when the variable is set, else the default (resolved at run
    time)."""
    import dagster as dg

    return dg.EnvVar(name) if os.environ.get(name) else default


def _env_int(name: str, default: int) -> int:
    import dagster as dg

    return dg.EnvVar.int(name) if os.environ.get(name) else default


def _as_env_vars(table: dict) -> dict:
    """Resource config for a Dagster resource: `EnvVar`s, resolved at run time."""
    return {
        field: (_env_int if kind is int else _env)(name, default)
        for field, (name, default, kind) in table.items()
    }


def _from_environment(table: dict) -> dict:
    """The same settings read now (no Dagster): for goldctl's fast commands."""
    values = {}
    for field, (name, default, kind) in table.items():
        raw = os.environ.get(name)
        if not raw:
            values[field] = default
            continue
        try:
            values[field] = kind(raw)
        except ValueError:
            from resources.settings_check import SettingError

            raise SettingError(f"{name} must be an integer (it is {raw!r})", setting=name) from None
    return values


def lake_storage() -> LakeStorage:
    from resources.storage import LakeStorage

    return LakeStorage(**_as_env_vars(LAKE_SETTINGS))


def sql_engine(lake: LakeStorage) -> AthenaEngine | DuckDBEngine:
    from resources.sql_engine import AthenaEngine, DuckDBEngine

    choice = engine_choice()
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


def engine_choice() -> str:
    from resources.settings_check import SettingError

    choice = os.environ.get("SQL_ENGINE", "duckdb").strip().lower()
    if choice not in ENGINES:
        raise SettingError(f"SQL_ENGINE={choice!r}: expected one of {', '.join(ENGINES)}")
    return choice


def serving_database() -> ServingDatabase:
    from resources.serving_db import ServingDatabase

    return ServingDatabase(**_as_env_vars(SERVING_SETTINGS))


def build_resources() -> dict:
    from resources.alerts import AlertNotifier
    from resources.source import SourceSettings

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


def plain_lake() -> PlainLake:
    """The lake from the environment without Dagster (checked on first access)."""
    from resources.storage import PlainLake

    return PlainLake(**_from_environment(LAKE_SETTINGS))


def plain_serving() -> PlainServing:
    """The serving database from the environment without Dagster, its settings checked."""
    from resources.serving_db import PlainServing

    serving = PlainServing(**_from_environment(SERVING_SETTINGS))
    serving.require_settings()
    return serving


def check_environment() -> None:
    """Every resource's settings rules on the environment, without Dagster (goldctl's fast
    commands): the first resource with a problem raises it, as opening the resources would."""
    from resources import settings_check as rules

    env = os.environ.get
    lake = plain_lake()
    lake.require_settings()
    if engine_choice() == "athena":
        region = env("ATHENA_REGION") or env("AWS_REGION")
        rules.raise_problems(
            rules.athena_problems(
                region,
                env("ATHENA_OUTPUT_LOCATION"),
                lake.is_s3,
                env("ATHENA_DATABASE_PREFIX", ""),
            )
        )
    else:
        threads = _from_environment({"threads": ("DUCKDB_THREADS", 2, int)})["threads"]
        rules.raise_problems(rules.duckdb_problems(threads))
    plain_serving()
    rules.raise_problems(rules.webhook_problems(env("ALERT_WEBHOOK_URL")))
