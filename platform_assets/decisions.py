"""What `lake_change_sensor` decided for a table this tick, and why, so it is never silent.

Every tick logs one line per table; a change of decision (in sync -> requested -> running ->
in sync, backing off, refused, ...) is also recorded on the RDS asset as an observation, read
back from the instance, so the asset's history says why a copy lags without reading tick logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from platform_assets.keys import rds_key

if TYPE_CHECKING:
    from platform_assets.specs import GoldTableSpec


LABEL = "sensor_decision"
QUIET = "in_sync"  # the decision nothing needs to be said about


@dataclass(frozen=True)
class Decision:
    kind: str  # in_sync | requested | running | backing_off | refused | no_lake_version
    text: str  # one line a person can act on
    steady: bool = False  # unchanged since a look that recorded it: nothing to check


def last_kind(instance: dg.DagsterInstance, key: dg.AssetKey) -> str:
    records = instance.fetch_observations(key, limit=1).records
    for record in records:
        observation = record.asset_observation
        value = observation.metadata.get(LABEL) if observation else None
        if value is not None:
            return str(value.value)
    return QUIET


def record(
    instance: dg.DagsterInstance, spec: GoldTableSpec, decision: Decision
) -> list[dg.AssetObservation]:
    """An observation of `rds/gold/<table>` when the decision changed since the last one."""
    key = rds_key(spec.name)
    if last_kind(instance, key) == decision.kind:
        return []
    return [
        dg.AssetObservation(
            asset_key=key,
            description=f"lake_change_sensor: {decision.text}",
            metadata={LABEL: decision.kind, "reason": decision.text},
        )
    ]
