"""The months a partitioned RDS copy holds, kept as the dynamic partitions of its
reload-months job (backfills.py; the UI's partitions page).
"""

from __future__ import annotations

import dagster as dg
import psycopg

from platform_assets.serving import ledger
from platform_assets.specs import GoldTableSpec


def months_partitions_name(spec: GoldTableSpec) -> str:
    return f"{spec.name}__months"


def months_partitions(spec: GoldTableSpec) -> dg.DynamicPartitionsDefinition:
    """The months a partitioned RDS copy holds: the partitions of its reload-months job."""
    return dg.DynamicPartitionsDefinition(name=months_partitions_name(spec))


def months_changes(
    instance: dg.DagsterInstance,
    spec: GoldTableSpec,
    conn: psycopg.Connection | None,
    held: set[str] | None = None,
) -> tuple[list[str], list[str]]:
    """(months to add, months to drop) so the reload job's partitions are the months held
    (`held`: the ledger's months as the caller read them, else read here)."""
    if held is None:
        if conn is None:
            raise ValueError("months_changes needs the ledger's months or a connection")
        held = set(ledger.read_partitions(conn, spec.name))
    known = set(instance.get_dynamic_partitions(months_partitions_name(spec)))
    return sorted(held - known), sorted(known - held)


def register_months(instance: dg.DagsterInstance, spec: GoldTableSpec, held: set[str]) -> None:
    added, dropped = months_changes(instance, spec, None, held)
    name = months_partitions_name(spec)
    if added:
        instance.add_dynamic_partitions(name, added)
    for month in dropped:
        instance.delete_dynamic_partition(name, month)
