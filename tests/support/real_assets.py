"""The real assets materialized in this process, on local resources: part of the graph (what
tests and the sync tracer need) or the whole platform at a scale (what the dashboard and sync
benchmarks measure against)."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import dagster as dg

    from resources.serving_db import ServingDatabase
    from resources.storage import LakeStorage


def _log(message: str) -> None:
    print(f"[platform] {message}", file=sys.stderr, flush=True)


def platform_resources(lake: LakeStorage, serving: ServingDatabase, scale_years: int = 1) -> dict:
    """The local resources the assets run on: the lake, DuckDB, the serving database, the source
    at `scale_years`."""
    from resources.source import SourceSettings
    from resources.sql_engine import DuckDBEngine

    return {
        "lake": lake,
        "engine": DuckDBEngine(lake=lake),
        "serving": serving,
        "source": SourceSettings(scale_years=scale_years),
    }


def materialize(
    selection: str,
    resources: dict,
    run_config: dict | None = None,
    raise_on_error: bool = True,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize part of the real asset graph (the same definitions `dagster dev` loads), in
    this process. Only the assets the selection touches are passed, so a caller provides only
    their resources."""
    import dagster as dg

    from platform_assets.definitions import ASSETS, defs

    keys = dg.AssetSelection.from_string(selection).resolve(defs.resolve_asset_graph())
    return dg.materialize(
        [a for a in ASSETS if set(a.keys) & keys],
        instance=instance,
        selection=selection,
        resources=resources,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def build_platform(
    workdir: Path, rds_url: str, scale_years: int
) -> tuple[LakeStorage, ServingDatabase]:
    """A local lake in `workdir` and the serving DB at `rds_url`, materialized by the assets.

    Returns (lake, serving)."""
    from resources.serving_db import ServingDatabase
    from resources.storage import LakeStorage

    serving = ServingDatabase(url=rds_url)
    lake = LakeStorage(url=str(workdir / "lake"))
    _log(f"materializing the platform at scale_years={scale_years} into {workdir} ...")
    started = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr):
        result = materialize("*", platform_resources(lake, serving, scale_years))
    if not result.success:
        raise SystemExit("materialize failed")
    _log(f"platform built in {time.monotonic() - started:.1f} s")
    return lake, serving
