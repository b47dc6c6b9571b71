"""The freshness policy both Gold assets declare: the spec's windows (specs.py holds the
defaults)."""

import dagster as dg

from platform_assets.specs import GoldTableSpec


def policy(spec: GoldTableSpec) -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.time_window(
        fail_window=spec.freshness_sla, warn_window=spec.freshness_warn
    )
