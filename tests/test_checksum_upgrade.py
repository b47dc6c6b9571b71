"""An upgrade of the fingerprint never makes a healthy copy look changed, nor hides a changed one.

A ledger written by a deployment before fingerprint VERSION 2 holds checksums of the old rendering
(simulated here with the old algorithm, copied from git history `ceb88af:resources/fingerprint.py`
into this test only). The RDS checks stay green, the next sync copies no data and rewrites the
ledger's checksums with today's; a copy that was also changed by hand is red and gets repaired.
"""

from __future__ import annotations

import pyarrow as pa

from platform_assets.identifiers import quote_ident
from platform_assets.lake.fingerprint import VERSION, fingerprint
from platform_assets.serving import ledger
from platform_assets.serving.checksum_upgrade import held_schema
from platform_assets.specs import GOLD_BY_NAME, GOLD_TABLES
from tests.support.copies import sync_spec
from tests.support.in_process import check_name, failed_checks, run_rds_checks

CARRIER = GOLD_BY_NAME["carrier_daily_performance"]


def _old_canonical(name: str, arrow_type: pa.DataType) -> str:
    """The PostgreSQL side of fingerprint version 1 (ceb88af), as old ledgers hold it."""
    col = quote_ident(name)
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        text = f"CAST(CAST(FLOOR({col} * 10000 + 0.5) AS BIGINT) AS TEXT)"
    elif pa.types.is_timestamp(arrow_type):
        text = f"TO_CHAR({col}, 'YYYY-MM-DD HH24:MI:SS')"
    else:
        text = f"CAST({col} AS TEXT)"
    return f"COALESCE({text}, '\\N')"


def _old_segments(conn, table: str, schema: pa.Schema, segment_column: str) -> dict:
    row_text = " || '|' || ".join(_old_canonical(f.name, f.type) for f in schema)
    segment = f"SUBSTR(CAST({quote_ident(segment_column)} AS TEXT), 1, 7)"
    rows = conn.execute(
        f"SELECT {segment}, COUNT(*), SUM(('x' || SUBSTR(MD5({row_text}), 1, 8))::BIT(32)::BIGINT)"
        f" FROM gold.{quote_ident(table)} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {str(s): (int(n), int(c)) for s, n, c in rows}


def _write_old_ledger(serving, spec) -> None:
    """What a pre-upgrade deployment left: every row's checksums by version 1 (and no version)."""
    with serving.connect(autocommit=True) as conn:
        row = ledger.read(conn, spec.name)
        old = _old_segments(conn, spec.name, held_schema(row), spec.segment_column)
        units = ledger.read_units(conn, spec.name)
        rewrite = {"": old} | {key: (old if key == "*" else {key: old[key]}) for key in units}
        for key, segs in rewrite.items():
            conn.execute(
                "UPDATE platform.sync_ledger SET segments = %s::jsonb, fingerprint = %s, "
                "checksums = 1 WHERE table_name = %s AND partition_key = %s",
                (_json(segs), fingerprint(segs), spec.name, key),
            )
        assert old != {k: tuple(v) for k, v in row.segments.items()}  # really another algorithm


def _json(segs: dict) -> str:
    import json

    return json.dumps({k: list(v) for k, v in segs.items()})


def _filenodes(serving) -> dict[str, int]:
    with serving.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_relation_filenode(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'gold' AND c.relkind = 'r'"
        ).fetchall()
    return dict(rows)


def _versions(serving) -> set[int]:
    with serving.connect(autocommit=True) as conn:
        return {v for (v,) in conn.execute("SELECT DISTINCT checksums FROM platform.sync_ledger")}


def test_old_ledger_checksums_stay_green_and_are_upgraded_without_copying(built):
    instance, resources = built
    lake, serving = resources["lake"], resources["serving"]
    for spec in GOLD_TABLES:
        _write_old_ledger(serving, spec)
    assert _versions(serving) == {1}
    files = _filenodes(serving)

    assert failed_checks(run_rds_checks(resources, instance)) == set()  # no false alarm

    for spec in GOLD_TABLES:
        result = sync_spec(lake, serving, spec)
        assert result.action == "unchanged", (spec.name, result)
    assert _filenodes(serving) == files  # not one relation rewritten: no data copied
    assert _versions(serving) == {VERSION}
    assert failed_checks(run_rds_checks(resources, instance)) == set()
    for spec in GOLD_TABLES:  # and now a no-op again
        assert sync_spec(lake, serving, spec).action == "unchanged"


def test_a_copy_changed_under_an_old_ledger_is_red_and_repaired(built):
    instance, resources = built
    lake, serving = resources["lake"], resources["serving"]
    _write_old_ledger(serving, CARRIER)
    with serving.connect(autocommit=True) as conn:
        month = conn.execute(
            f"UPDATE gold.{CARRIER.name} SET flights = flights + 1 WHERE (tableoid, ctid) IN "
            f"(SELECT tableoid, ctid FROM gold.{CARRIER.name} LIMIT 1) "  # one row, one month
            "RETURNING to_char(flight_date, 'YYYY-MM')"
        ).fetchone()[0]
    files = _filenodes(serving)

    checks = run_rds_checks(resources, instance)
    assert failed_checks(checks) == {check_name(CARRIER.name, "fingerprint_matches")}
    [fp] = [
        e
        for e in checks.get_asset_check_evaluations()
        if e.check_name == "fingerprint_matches" and e.asset_key.path[-1] == CARRIER.name
    ]
    assert fp.metadata["differing_segments"].value == month

    result = sync_spec(lake, serving, CARRIER)
    assert result.action == "loaded" and result.partitions_reloaded == [month], result
    after = _filenodes(serving)
    changed = {name for name in files if after.get(name) != files[name]}
    assert changed == {f"{CARRIER.name}__p{month.replace('-', '')}"}, changed
    assert failed_checks(run_rds_checks(resources, instance)) == set()
    with serving.connect(autocommit=True) as conn:
        versions = conn.execute(
            "SELECT DISTINCT checksums FROM platform.sync_ledger WHERE table_name = %s",
            (CARRIER.name,),
        ).fetchall()
    assert versions == [(VERSION,)]
