"""Nothing rebuilt for unchanged inputs: what each lake build was made from.

A build's *inputs key* hashes its code (SQL, landing code, settings that shape it) and the
listing tokens of the upstream tables' stored files, so any change of code or upstream data,
ours or an outside writer's, changes it. Bronze and Silver keep `<layer>/<table>/_build.json`
(`{"inputs", "token", ...}`, written after the data); Gold keeps the key in its manifest. A step
whose key matches, and whose own files are still the ones recorded, does no work and reports the
same data version, so the UI shows the asset up to date and nothing downstream moves. Readers
skip the record: pyarrow datasets, DuckDB and Athena ignore `_`-prefixed files.
"""

from __future__ import annotations

import hashlib
import json

from resources.storage import LakeOps, StoredObject, listing_token

RECORD = "_build.json"


def inputs_key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def code_hash(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:12]


def data_files(lake: LakeOps, location: str) -> list[StoredObject]:
    """The files readers see below `location` (no `_`/`.`-prefixed names at any level)."""
    return [
        o
        for o in lake.list_keys(location)
        if not any(part.startswith(("_", ".")) for part in o.key[len(location) :].split("/"))
    ]


def upstream_tokens(lake: LakeOps, locations: list[str]) -> list[str]:
    """`location=token` of each upstream table's stored files, in a stable order."""
    return [f"{loc}={listing_token(data_files(lake, loc))}" for loc in sorted(locations)]


def unchanged(lake: LakeOps, location: str, key: str) -> dict | None:
    """The record of the build at `location` when it was made from `key` and its files are
    still the ones it wrote; else None (build again)."""
    raw = lake.read_bytes(f"{location}/{RECORD}")
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("inputs") != key:
        return None
    return record if record.get("token") == listing_token(data_files(lake, location)) else None


def write(lake: LakeOps, location: str, key: str, **facts: object) -> dict:
    """Record that the files now at `location` were built from `key` (after the data)."""
    record = {"inputs": key, "token": listing_token(data_files(lake, location)), **facts}
    lake.write_bytes(f"{location}/{RECORD}", json.dumps(record, sort_keys=True).encode())
    return record
