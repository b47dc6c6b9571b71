"""Named points where a sync can be held still, so fault tests hit the exact moment they mean.

With `GOLD_SYNC_PAUSE_AT=<point>` and `GOLD_SYNC_PAUSE_FILE=<path>` in its environment, a sync
that reaches `<point>` writes its pid to `<path>` and waits while the file exists. A test waits
for the file, then kills the process (SIGKILL), stops the database, or deletes the file to let
it go on. Points: `copy` (mid-COPY, batches sent, the statement open), `verify` (rows copied,
before their checksums are compared), `publish` (inside the publish transaction, old units
detached and dropped, new ones not attached yet). Besides them, `exclusive`: an unforced
sync that must load, between its read under the sync lock held shared and taking the lock for
itself (not in POINTS: `--force` skips it), and `judge`: a load that has published (its lock's
transaction committed), before it holds the lock shared again to judge its checks. Unset
(always, outside tests), it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

POINTS = ("copy", "verify", "publish")
_passed: set[str] = set()  # a point holds the process once; threads arriving meanwhile wait
_lock = threading.Lock()


def reached(point: str) -> None:
    if os.environ.get("GOLD_SYNC_PAUSE_AT") != point or point in _passed:
        return
    marker = Path(os.environ["GOLD_SYNC_PAUSE_FILE"])
    with _lock:
        if point not in _passed:
            marker.write_text(str(os.getpid()))
            while marker.exists():
                time.sleep(0.01)
            _passed.add(point)
