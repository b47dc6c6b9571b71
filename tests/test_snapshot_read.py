"""One consistent read of a copy's state: no surface takes a normal publish for damage.

A publish swaps units and writes the ledger in one transaction; a reader that reads the ledger
and the catalog in separate statements can see the ledger of one side and the catalog of the
other (the dashboard once showed RED "dropped, truncated or rewritten by hand" for 1 read in
16,517). The badge, `goldctl status` and the sensor read them in one snapshot
(`ledger.one_snapshot`). Here thousands of badge reads (as the dashboard role) and status fact
reads run while forced syncs of a partitioned and a whole-table copy publish again and again:
zero of them may see damage.
"""

from __future__ import annotations

import threading

import psycopg

from dashboard.data import badge_rows
from dashboard.queries import ALL_TABLES
from platform_assets.specs import GOLD_BY_NAME
from platform_assets.status import read_rds_facts
from tests.support.copies import sync_spec

SYNCED = [GOLD_BY_NAME["carrier_daily_performance"], GOLD_BY_NAME["airport_daily_weather"]]
READS = 3000
MIN_SYNCS = 4


def test_thousands_of_badge_reads_during_forced_syncs_see_no_damage(built):
    _, resources = built
    lake, serving = resources["lake"], resources["serving"]
    done = threading.Event()
    publishes, errors = [], []

    def syncing():
        try:
            while not done.is_set():
                for spec in SYNCED:
                    publishes.append(sync_spec(lake, serving, spec, force=True).lake_version)
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
            done.set()

    worker = threading.Thread(target=syncing, daemon=True)
    worker.start()
    reads, damaged, versions = 0, [], set()
    try:
        with (
            psycopg.connect(serving.dashboard_url(), autocommit=True) as reader,
            serving.connect(autocommit=True) as loader,
        ):
            while (reads < READS or len(publishes) < MIN_SYNCS) and not errors:
                rows = badge_rows(reader, ALL_TABLES)
                facts = read_rds_facts(loader, list(ALL_TABLES))
                reads += 1
                for table, row in rows.items():
                    versions.add(row["loaded_at"])
                    for problem in (row["copy_problem"], facts.copy_problem(table)):
                        if problem:
                            damaged.append(problem)
    finally:
        done.set()
        worker.join(timeout=300)
    assert not errors, errors
    assert len(publishes) >= MIN_SYNCS and reads >= READS
    assert len(versions) > MIN_SYNCS  # the reads did span publishes
    assert damaged == [], f"{len(damaged)} of {reads} reads saw damage: {damaged[:3]}"
