"""The whole asset graph as one reviewable JSON file: keys, deps, kinds, groups, checks, policies.

Any change to the graph (a new Gold table, a renamed check, a dropped freshness policy, a lost
dependency) changes `tests/snapshots/asset_graph.json` and so shows up in review. After an
intended change, regenerate it with:

    UPDATE_SNAPSHOTS=1 uv run pytest tests/test_asset_graph_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import dagster as dg

from platform_assets.definitions import defs
from platform_assets.specs import GOLD_TABLES

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def _window(value) -> str | None:
    if value is None:
        return None
    return str(value.to_timedelta() if hasattr(value, "to_timedelta") else value)


def _freshness(policy) -> dict | None:
    if policy is None:
        return None
    out: dict = {"type": type(policy).__name__}
    for attr in ("fail_window", "warn_window", "deadline_cron", "lower_bound_delta", "timezone"):
        if hasattr(policy, attr):
            value = getattr(policy, attr)
            out[attr] = _window(value) if attr.endswith(("window", "delta")) else value
    return out


def graph_snapshot() -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        checks = {}
        for check_key in sorted(node.check_keys, key=lambda c: c.name):
            spec = graph.get_check_spec(check_key)
            checks[check_key.name] = {
                "blocking": bool(spec.blocking),
                "additional_deps": sorted(
                    d.asset_key.to_user_string() for d in spec.additional_deps
                ),
            }
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "checks": checks,
            "freshness_policy": _freshness(node.freshness_policy),
            "materializable": node.is_materializable,
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in defs.jobs or []),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def test_asset_graph_matches_snapshot():
    current = _dump(graph_snapshot())
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), (
        f"{SNAPSHOT} is missing: create it with "
        "UPDATE_SNAPSHOTS=1 uv run pytest tests/test_asset_graph_snapshot.py"
    )
    stored = SNAPSHOT.read_text()
    if stored != current:
        diff = "".join(
            difflib.unified_diff(
                stored.splitlines(keepends=True),
                current.splitlines(keepends=True),
                fromfile="tests/snapshots/asset_graph.json (stored)",
                tofile="asset graph (current code)",
            )
        )
        raise AssertionError(
            "The asset graph changed. If the change is intended, review the diff below and run\n"
            "    UPDATE_SNAPSHOTS=1 uv run pytest tests/test_asset_graph_snapshot.py\n"
            "then commit tests/snapshots/asset_graph.json.\n\n" + diff
        )


def test_snapshot_covers_every_gold_table_twice_with_checks_and_freshness():
    """The snapshot is not vacuous: each spec yields a lake and an RDS asset, fully equipped."""
    assets = graph_snapshot()["assets"]
    for spec in GOLD_TABLES:
        lake = assets[f"lake/gold/{spec.name}"]
        rds = assets[f"rds/gold/{spec.name}"]
        assert lake["kinds"] == ["athena", "s3"]
        assert rds["kinds"] == ["postgres"]
        assert rds["deps"] == [f"lake/gold/{spec.name}"]
        assert all(d.startswith("lake/silver/") for d in lake["deps"]) and lake["deps"]
        assert set(lake["checks"]) == {"not_empty", "primary_key_unique", "primary_key_not_null"}
        assert all(c["blocking"] for c in lake["checks"].values())
        assert set(rds["checks"]) == {
            "in_sync_with_lake",
            "row_count_matches",
            "fingerprint_matches",
            "fits_storage_budget",
        }
        assert all(
            c["additional_deps"] == [f"lake/gold/{spec.name}"] for c in rds["checks"].values()
        )
        for node in (lake, rds):
            assert node["freshness_policy"] is not None
            assert node["freshness_policy"]["fail_window"] == str(spec.freshness_sla)
            assert node["freshness_policy"]["warn_window"] == str(spec.freshness_warn)
    # every dependency points at an asset of the graph
    for name, node in assets.items():
        for dep in node["deps"]:
            assert dep in assets, f"{name} depends on unknown {dep}"
    assert dg.AssetKey(["lake", "gold", GOLD_TABLES[0].name]).to_user_string() in assets
