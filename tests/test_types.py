"""The shipped code type-checks: basedpyright (pyright's basic mode, configured in
pyproject.toml over platform_assets/, resources/ and dashboard/) runs with the tests, so CI
enforces it as it does lint."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("platform_assets", "resources", "dashboard")


def test_basedpyright_finds_no_errors():
    result = subprocess.run(
        [sys.executable, "-m", "basedpyright", "--outputjson"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    report = json.loads(result.stdout)
    errors = [
        f"{d['file'].removeprefix(str(ROOT) + '/')}:{d['range']['start']['line'] + 1}: "
        f"{d['message'].splitlines()[0]} ({d.get('rule', '')})"
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    ]
    assert not errors and result.returncode == 0, "\n".join(errors) or result.stderr
    # every module of the three packages was read (a configuration that checks nothing fails)
    modules = sum(len(list((ROOT / p).rglob("*.py"))) for p in CHECKED)
    assert report["summary"]["filesAnalyzed"] >= modules, report["summary"]
