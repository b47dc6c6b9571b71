"""The op layer's retries without their wait, for a test whose failure cannot heal.

`retry_rule.OP_RETRY` waits 5, 10 and 20 s between attempts (35 s of a test's time spent
sleeping) when nothing the test does can make a retry succeed. With the wait at 0 every retry
still happens, in order, on the same policy and classification; only the clock is skipped, as
`monkeypatch.setattr(retry_rule, "BASE_DELAY_S", 0.0)` skips the sensor's backoff. A test that
must act between attempts (release a lock, free connection slots) keeps the real wait.
"""

from __future__ import annotations

import dagster as dg
import pytest


def retry_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `RetryPolicy` in this process retries without waiting (Dagster asks the policy
    for each attempt's delay: `RetryPolicy.calculate_delay`)."""
    monkeypatch.setattr(dg.RetryPolicy, "calculate_delay", lambda _policy, _attempt: 0)
