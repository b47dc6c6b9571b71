"""The whole platform built by its real assets (Bronze to the RDS copies) into a local lake and
a serving database: what the dashboard and sync benchmarks measure against."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from resources.serving_db import ServingDatabase
    from resources.storage import LakeStorage


def _log(message: str) -> None:
    print(f"[platform] {message}", file=sys.stderr, flush=True)


def build_platform(
    workdir: Path, rds_url: str, scale_years: int
) -> tuple[LakeStorage, ServingDatabase]:
    """A local lake in `workdir` and the serving DB at `rds_url`, materialized by the assets.

    Returns (lake, serving)."""
    import dagster as dg

    from platform_assets.definitions import ASSETS
    from resources.serving_db import ServingDatabase
    from resources.source import SourceSettings
    from resources.sql_engine import DuckDBEngine
    from resources.storage import LakeStorage

    serving = ServingDatabase(url=rds_url)
    lake = LakeStorage(url=str(workdir / "lake"))
    _log(f"materializing the platform at scale_years={scale_years} into {workdir} ...")
    started = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr):
        result = dg.materialize(
            ASSETS,
            selection="*",
            resources={
                "lake": lake,
                "engine": DuckDBEngine(lake=lake),
                "serving": serving,
                "source": SourceSettings(scale_years=scale_years),
            },
        )
    if not result.success:
        raise SystemExit("materialize failed")
    _log(f"platform built in {time.monotonic() - started:.1f} s")
    return lake, serving
