"""The one retry rule: a refusal is never retried, a transient failure is, on one bounded backoff.

A *refusal* (guard, schema policy, verification, a bad lake file, bad settings, a table not built
yet) cannot heal by waiting: it raises `Failure(allow_retries=False)`, the ledger keeps the
reason, and nothing asks again until the lake changes (or someone forces a sync). A *transient*
failure (database or S3 unreachable, connection lost, lock budget exhausted) is retried on one
exponential schedule, 5 s doubling, capped at an hour, split across the layers:

- op: `RetryPolicy` for the first `OP_RETRIES` attempts (5, 10, 20 s, jittered), in the run;
- sensor: `lake_change_sensor` requests a new sync run for a copy still out of sync after a
  failed one, continuing the schedule (40, 80, 160 s ... capped at `MAX_DELAY_S`);
- instance: `run_retries` in deploy/dagster.yaml re-executes only a run whose worker crashed
  (`retry_on_asset_or_op_failure: false`): an op's failure was already judged by the op layer.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import TypeVar, cast

import dagster as dg

F = TypeVar("F", bound=Callable[..., object])

BASE_DELAY_S = 5.0
OP_RETRIES = 3
MAX_DELAY_S = 3600.0

OP_RETRY = dg.RetryPolicy(
    max_retries=OP_RETRIES,
    delay=BASE_DELAY_S,
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)


def sensor_backoff_s(failed_attempt: int) -> float:
    """Seconds after sync run number `failed_attempt` failed before the next one is requested:
    the op's schedule continued (each run already spent `OP_RETRIES` retries)."""
    step = OP_RETRIES + failed_attempt - 1
    return min(BASE_DELAY_S * 2**step, MAX_DELAY_S)


def refusal(description: str) -> dg.Failure:
    return dg.Failure(description=description, allow_retries=False)


@contextlib.contextmanager
def classified(table: str, during: str) -> Iterator[None]:
    """Inside an op: every exception leaves as a refusal or a transient failure, as
    `serving/errors.classify` says (a bare one would be retried by the op's `RetryPolicy`,
    whatever it is); one it does not know is a bug: not retried."""
    from platform_assets.serving.errors import as_failure, classify

    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        known = classify(exc, table, during)
        if known is not None:
            raise as_failure(known) from exc
        text = f"gold.{table}: {type(exc).__name__} during {during}: {exc}".splitlines()[0]
        raise refusal(text) from exc


def classifies(table: str, during: str) -> Callable[[F], F]:
    """`classified` as a decorator of an op's function (a generator stays a generator)."""

    def wrap(fn: F) -> F:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen(*args: object, **kwargs: object) -> Iterator[object]:
                with classified(table, during):
                    yield from cast(Iterator[object], fn(*args, **kwargs))

            return cast(F, gen)

        @functools.wraps(fn)
        def plain(*args: object, **kwargs: object) -> object:
            with classified(table, during):
                return fn(*args, **kwargs)

        return cast(F, plain)

    return wrap
