"""Nothing redone for unchanged data: a rebuild of an unchanged platform rewrites no file,
publishes no Gold version and copies nothing; a change of code or data is rebuilt."""

from __future__ import annotations

import dataclasses

import dagster as dg

from platform_assets.build_record import data_files
from platform_assets.definitions import ASSETS
from platform_assets.gold_assets.lake_asset import build_lake_asset
from platform_assets.lake.tables import GoldLake
from platform_assets.specs import GOLD_BY_NAME, GOLD_TABLES
from resources.storage import LakeStorage, listing_token
from tests.conftest import materialize, platform_resources

EVERYTHING = "*"
LAYERS = ("bronze", "silver")


def _stored(lake: LakeStorage) -> dict[str, str]:
    """Each lake table's stored files, as a token (changes when any file is rewritten)."""
    tables = {f"{layer}/{d}" for layer in LAYERS for d in lake.list_dirs(layer)}
    tables |= {f"gold/{s.name}" for s in GOLD_TABLES}
    return {t: listing_token(data_files(lake, t)) for t in sorted(tables)}


def _materializations(result) -> dict[str, dg.AssetMaterialization]:
    return {
        "/".join(m.asset_key.path): m
        for m in (
            e.event_specific_data.materialization for e in result.get_asset_materialization_events()
        )
    }


def test_a_rebuild_of_unchanged_data_rewrites_publishes_and_copies_nothing(tmp_path, serving):
    lake = LakeStorage(url=str(tmp_path / "lake"))
    resources = platform_resources(lake, serving)
    with dg.instance_for_test() as instance:
        first = materialize(EVERYTHING, resources, instance=instance)
        assert first.success
        stored, gold = _stored(lake), GoldLake(lake)
        versions = {s.name: gold.versions(s.name) for s in GOLD_TABLES}

        again = materialize(EVERYTHING, resources, instance=instance)
        assert again.success
        assert _stored(lake) == stored  # not one file rewritten, no version folder added
        assert {s.name: gold.versions(s.name) for s in GOLD_TABLES} == versions

        before, after = _materializations(first), _materializations(again)
        assert set(after) == set(before) == {"/".join(k.path) for a in ASSETS for k in a.keys}
        for key, mat in after.items():
            if key.startswith("lake/"):
                assert mat.metadata["unchanged"].value == "inputs", key
                assert mat.tags["dagster/data_version"] == before[key].tags["dagster/data_version"]
            else:
                assert mat.metadata["action"].value == "unchanged", key  # RDS copied nothing
        assert all(c.passed for c in again.get_asset_check_evaluations())


def test_changed_data_is_rebuilt_and_only_what_depends_on_it(tmp_path, serving):
    lake = LakeStorage(url=str(tmp_path / "lake"))
    resources = platform_resources(lake, serving)
    assert materialize(EVERYTHING, resources).success
    gold = GoldLake(lake)
    versions = {s.name: gold.current_state(s.name).version for s in GOLD_TABLES}

    # an outside writer replaces Silver weather's files: Silver weather is built again (the
    # same data as before), and the Gold table reading it is rebuilt to the same content
    for obj in data_files(lake, "silver/weather")[:1]:
        lake.write_bytes(obj.key, lake.read_bytes(obj.key))  # same bytes, a new file
    result = materialize(EVERYTHING, resources)
    assert result.success
    mats = _materializations(result)
    assert "unchanged" not in mats["lake/silver/weather"].metadata
    assert mats["lake/silver/flights"].metadata["unchanged"].value == "inputs"
    assert mats["lake/gold/airport_daily_weather"].metadata["unchanged"].value == "content"
    assert mats["lake/gold/carrier_daily_performance"].metadata["unchanged"].value == "inputs"
    assert {s.name: gold.current_state(s.name).version for s in GOLD_TABLES} == versions
    assert len(gold.versions("airport_daily_weather")) == 1  # the rebuilt twin was dropped

    # a Gold SQL change that changes the data publishes a new version
    spec = GOLD_BY_NAME["airport_daily_weather"]
    sql_dir = tmp_path / "sql"
    (sql_dir / "gold").mkdir(parents=True)
    (sql_dir / "gold" / f"{spec.name}.sql").write_text(
        spec.sql.replace("AVG(f.dep_delay)", "ROUND(AVG(f.dep_delay), 1)")
    )
    changed = dataclasses.replace(spec, sql_dir=sql_dir)
    assert changed.sql != spec.sql
    assert dg.materialize([build_lake_asset(changed)], resources=resources).success
    state = gold.current_state(spec.name)
    assert state.version != versions[spec.name] and not state.changed_outside
    assert len(gold.versions(spec.name)) == 2
