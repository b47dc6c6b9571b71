"""`platform.copy_owners`: which deployment owns each serving copy.

A deployment is a name (`GOLD_DEPLOYMENT`, default: its lake's location) plus its lake's
location. The first sync of a copy claims it; a sync from any other deployment is refused
before it touches anything (no staging, no ledger row, no refusal written over the owner's),
naming the owner. `goldctl take-over TABLE --from OWNER` hands a copy over on purpose. Two
deployments whose tables differ share one server: each syncs its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import psycopg

from platform_assets.serving import ledger
from platform_assets.serving.errors import OwnershipRefused
from platform_assets.serving.names import PLATFORM_SCHEMA

if TYPE_CHECKING:
    from resources.serving_db import ServingOps
    from resources.storage import LakeOps


class ForeignCopy(OwnershipRefused):
    """Another deployment owns the copy. Refused before anything is touched, and not recorded:
    the refusals row is the owner's to write."""

    recorded = False


@dataclass(frozen=True)
class Deployment:
    name: str
    lake_location: str

    @classmethod
    def of(cls, serving: ServingOps, lake_storage: LakeOps) -> Deployment:
        """This process's deployment, from the serving resource and the lake storage."""
        location = lake_storage.uri()
        return cls(serving.deployment or location, location)


@dataclass(frozen=True)
class Owner:
    table: str
    deployment: str
    lake_location: str
    since: datetime

    def describe(self) -> str:
        since = f"{self.since:%Y-%m-%d %H:%M} UTC"
        return f"deployment {self.deployment!r} (lake {self.lake_location}, since {since})"


def read_owners(conn: psycopg.Connection) -> dict[str, Owner]:
    if not ledger.platform_table_exists(conn, "copy_owners"):
        return {}
    rows = conn.execute(
        f"SELECT table_name, deployment, lake_location, since FROM {PLATFORM_SCHEMA}.copy_owners"
    )
    return {r[0]: Owner(*r) for r in rows}


def foreign_owner(owner: Owner | None, me: Deployment | None) -> Owner | None:
    """The owner when it is another deployment than `me` (None: ours, unclaimed, or unknown)."""
    if owner is None or me is None or owner.deployment == me.name:
        return None
    return owner


def refusal(table: str, owner: Owner, me: Deployment) -> str:
    return (
        f"gold.{table} belongs to {owner.describe()}; this deployment ({me.name!r}) does not "
        f"sync it. To hand it over on purpose: goldctl take-over {table} --from {owner.deployment}"
    )


def claim(conn: psycopg.Connection, table: str, me: Deployment) -> None:
    """Make `me` the owner of an unclaimed copy; refuse (touching nothing) when another
    deployment owns it."""
    row = conn.execute(  # one round trip: the claim, or the owner that was there before
        f"WITH claimed AS (INSERT INTO {PLATFORM_SCHEMA}.copy_owners "
        "(table_name, deployment, lake_location) VALUES (%(t)s, %(d)s, %(l)s) "
        "ON CONFLICT (table_name) DO NOTHING RETURNING table_name, deployment, lake_location, "
        "since) SELECT * FROM claimed UNION ALL SELECT table_name, deployment, lake_location, "
        f"since FROM {PLATFORM_SCHEMA}.copy_owners WHERE table_name = %(t)s",
        {"t": table, "d": me.name, "l": me.lake_location},
    ).fetchone()
    owner = foreign_owner(Owner(*row) if row else None, me)
    if owner is not None:
        raise ForeignCopy(refusal(table, owner, me), table=table)


def take_over(conn: psycopg.Connection, table: str, me: Deployment, previous: str) -> Owner | None:
    """Hand `table` to `me` from the deployment named `previous` (which must be its owner);
    returns the previous owner. Its refusal is forgotten: the next sync judges our lake."""
    with conn.transaction():
        owner = read_owners(conn).get(table)
        if owner is not None and owner.deployment != previous:
            raise ValueError(
                f"gold.{table} belongs to {owner.describe()}, not {previous!r}: nothing changed"
            )
        conn.execute(
            f"INSERT INTO {PLATFORM_SCHEMA}.copy_owners (table_name, deployment, lake_location) "
            "VALUES (%s, %s, %s) ON CONFLICT (table_name) DO UPDATE SET "
            "deployment = EXCLUDED.deployment, lake_location = EXCLUDED.lake_location, "
            "since = now()",
            (table, me.name, me.lake_location),
        )
        conn.execute(f"DELETE FROM {PLATFORM_SCHEMA}.sync_refusals WHERE table_name = %s", (table,))
    return owner
