"""`goldctl status` on a platform that was never built says so and names the command to run."""

from __future__ import annotations

import json

from resources.storage import LakeStorage
from tests.support.goldctl import goldctl, goldctl_env


def test_status_on_an_unbuilt_platform_is_not_ok_and_says_what_to_run(serving, tmp_path):
    env = goldctl_env(LakeStorage(url=str(tmp_path / "lake")), serving)

    done = goldctl("status", "--json", env=env)
    assert done.returncode == 3
    report = json.loads(done.stdout)
    assert report["built"] is False
    assert report["tables"] and all(
        not t["in_sync"] and t["severity"] == "error" and "no published version" in t["reason"]
        for t in report["tables"]
    )
    assert "uv run dg launch --assets '*'" in done.stderr

    text = goldctl("status", env=env)
    assert text.returncode == 3 and "OK" not in text.stdout and "None" not in text.stdout
    assert "not built yet" in text.stderr and "Traceback" not in text.stderr
