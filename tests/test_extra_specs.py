"""GOLD_EXTRA_SPECS: Gold tables declared in another module join the platform, or fail naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from platform_assets.specs import EXTRA_SPECS_ENV, extra_specs

ROOT = Path(__file__).resolve().parent.parent

MODULE = """
from pathlib import Path
from platform_assets.specs import GoldTableSpec

GOLD_TABLES = (
    GoldTableSpec(
        name={name!r},
        description="declared outside the package",
        primary_key=("flight_date", "origin"),
        segment_column="flight_date",
        sql_dir=Path(__file__).parent / "sql",
    ),
)
"""


def _declare(folder: Path, module: str, name: str) -> None:
    (folder / module / "sql" / "gold").mkdir(parents=True)
    (folder / module / "__init__.py").write_text(MODULE.format(name=name))
    sql = "SELECT flight_date, origin, COUNT(*) AS flights FROM silver.flights GROUP BY 1, 2\n"
    (folder / module / "sql" / "gold" / f"{name}.sql").write_text(sql)


def _specs_in_subprocess(folder: Path, module: str) -> subprocess.CompletedProcess:
    env = {**os.environ, EXTRA_SPECS_ENV: module, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}"}
    code = (
        "import json; from platform_assets.specs import GOLD_TABLES; "
        "print(json.dumps([[s.name, str(s.sql_path), s.output_columns] for s in GOLD_TABLES]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_an_extra_module_adds_its_tables_with_their_own_sql(tmp_path):
    _declare(tmp_path, "extra_gold_specs", "extra_table")
    done = _specs_in_subprocess(tmp_path, "extra_gold_specs")
    assert done.returncode == 0, done.stderr
    specs = {name: (path, cols) for name, path, cols in json.loads(done.stdout)}
    assert {"carrier_daily_performance", "extra_table"} <= set(specs)
    path, cols = specs["extra_table"]
    assert path == str(tmp_path / "extra_gold_specs" / "sql" / "gold" / "extra_table.sql")
    assert cols == ["flight_date", "origin", "flights"]


def test_a_table_declared_twice_fails_naming_it(tmp_path):
    _declare(tmp_path, "twice_gold_specs", "airport_daily_weather")
    done = _specs_in_subprocess(tmp_path, "twice_gold_specs")
    assert done.returncode != 0
    assert "declared twice: airport_daily_weather (GOLD_EXTRA_SPECS)" in done.stderr


def test_a_module_that_cannot_be_imported_is_named():
    with pytest.raises(ValueError, match="GOLD_EXTRA_SPECS=no_such_specs_module: cannot import"):
        extra_specs("no_such_specs_module")


def test_a_module_without_specs_is_named():
    with pytest.raises(ValueError, match="GOLD_EXTRA_SPECS=json: the module needs GOLD_TABLES"):
        extra_specs("json")


def test_no_setting_adds_nothing():
    assert extra_specs(None) == () and extra_specs("") == ()
