"""How the lake's columns differ from the copy's, and what the spec's policy makes of it.

Columns are matched by name: a rename is a drop plus an add, and a new column order alone is
no change (rows are loaded by name, and PostgreSQL cannot reorder a table's columns without
rebuilding it, which would break the views users hang on it).
"""

from __future__ import annotations

from dataclasses import dataclass

from platform_assets.serving.catalog import Columns


@dataclass(frozen=True)
class SchemaChange:
    """A change of at least one column (`diff` says None when there is none)."""

    added: tuple[tuple[str, str], ...] = ()  # (name, type) in lake order
    dropped: tuple[str, ...] = ()
    retyped: tuple[tuple[str, str, str], ...] = ()  # (name, old type, new type)

    def describe(self) -> str:
        parts = []
        if self.added:
            parts.append("added " + ", ".join(f"{c} ({t})" for c, t in self.added))
        if self.dropped:
            parts.append("dropped " + ", ".join(self.dropped))
        if self.retyped:
            parts.append("retyped " + ", ".join(f"{c} ({a} -> {b})" for c, a, b in self.retyped))
        return "; ".join(parts)

    def metadata(self) -> dict[str, str]:
        return {
            "columns_added": ", ".join(c for c, _ in self.added) or "none",
            "columns_dropped": ", ".join(self.dropped) or "none",
            "columns_retyped": ", ".join(f"{c}: {a} -> {b}" for c, a, b in self.retyped) or "none",
        }


def diff(old: Columns, new: Columns) -> SchemaChange | None:
    """What turns a table with columns `old` into one with columns `new`; None: nothing."""
    before, after = dict(old), dict(new)
    added = tuple((c, t) for c, t in new if c not in before)
    dropped = tuple(c for c, _ in old if c not in after)
    retyped = tuple((c, before[c], t) for c, t in new if c in before and before[c] != t)
    if not (added or dropped or retyped):
        return None
    return SchemaChange(added, dropped, retyped)
