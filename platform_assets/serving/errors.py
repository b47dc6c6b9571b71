"""The sync's failures, classed by what heals them (docs/DESIGN.md, "Errors").

- `SyncRefused`: the data, a policy, a guard, the verification or an object someone else owns
  says no. Only a person or a new lake state heals it, so it is recorded in the ledger (every
  surface shows the reason), named, and never retried; the old copy keeps serving.
- `SyncTransient`: the serving database, the network or the lake's storage failed under the
  sync. Time heals it: retried with backoff (the run's RetryPolicy, then the sensor).
- `NothingToSync`, `SyncUsageError`, `SyncMisconfigured`: no lake version yet, a request
  that makes no sense, a setting that is wrong. Not retried, not recorded as a refusal.

`classify()` is the one place a foreign exception (psycopg, ADBC, Arrow, storage, a lake fault)
becomes one of these; every surface (goldctl's exit code, a run's failure, the RDS checks, the
sensor) then reads `retryable` / `recorded` / `exit_code` and nothing else. No built-in
`ValueError` / `LookupError` carries a sync's meaning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import psycopg
import pyarrow as pa

from platform_assets.lake.tables import LakeFault
from resources.serving_db import ServingDbError, error_reason
from resources.settings_check import SettingError

if TYPE_CHECKING:
    from dagster import Failure


KEEPS_SERVING = "RDS keeps serving the old copy"


class SyncError(RuntimeError):
    """A sync of one table that did not publish; nothing live changed."""

    kind: ClassVar[str] = "failed"
    retryable: ClassVar[bool] = False  # may a later attempt of the same lake state succeed?
    recorded: ClassVar[bool] = False  # kept in platform.sync_refusals for every surface
    exit_code: ClassVar[int] = 1  # goldctl sync

    def __init__(self, message: str, numbers: dict | None = None, table: str | None = None):
        super().__init__(message)
        self.numbers = numbers or {}
        self.table = table


class SyncRefused(SyncError):
    """Refused: the lake state cannot or may not be published as it is. Retrying the same
    state cannot help; a person (or a new lake state, or `--force` for a guard) does."""

    kind = "refused"
    recorded = True


class DataRefused(SyncRefused):
    """The lake's data cannot be held exactly by the copy (a NUL in text, a value the loader
    cannot cast, an unreadable lake file)."""

    kind = "refused: data"


class GuardRefused(SyncRefused):
    """An empty or shrunken table: published only with force."""

    kind = "refused: guard"


class PolicyRefused(SyncRefused):
    """The spec's policy (schema change, keyed columns) forbids this lake state."""

    kind = "refused: policy"


class OwnershipRefused(SyncRefused):
    """An object the platform does not own (a user's view, another owner's copy) is in the way."""

    kind = "refused: ownership"


class SyncVerificationError(SyncRefused):
    """Staging did not match the lake; nothing was published."""

    kind = "refused: verification"


class SyncTransient(SyncError):
    """The serving database, the network or the storage failed under the sync (connection lost,
    server restarting, lock budget exhausted): nothing was published, and retrying can succeed."""

    kind = "transient"
    retryable = True


class LockBudgetExhausted(SyncTransient):
    """Readers held the table for longer than the publish may wait; a retry may get through."""


class NotPublishing(SyncError):
    """The sync's run ended (failed, canceled, its worker gone) before the publish: the staging
    was dropped and nothing published. Not retried: nobody waits for that run any more."""

    kind = "run ended"


class NothingToSync(SyncError):
    """The lake has no published version of the table yet: build it first."""

    kind = "not built"


class SyncUsageError(SyncError):
    """The request makes no sense for this table (months of a plain table, unknown months)."""

    kind = "usage"
    exit_code = 2


class SyncMisconfigured(SyncError):
    """A setting is wrong (not a server that is down): fix the setting."""

    kind = "misconfigured"
    exit_code = 2


# Deprecated spelling, kept importable for branches that still use it.
SyncTransientError = SyncTransient

# SQLSTATE classes (psycopg and ADBC both report them): what the server says about the failure.
_TRANSIENT_STATES = ("08", "40", "53", "57", "58", "55P03", "HV")
_REFUSED_STATES = ("22", "23", "42", "0A", "2B", "54")


def classify(
    exc: BaseException, table: str, during: str = "the sync", conninfo: str = ""
) -> SyncError | None:
    """`exc` as one of the sync's failures, naming `gold.<table>` and what it was doing; None
    for an exception that is a bug (let it raise with its traceback). A driver's message is
    kept on one line, without `conninfo`'s password in any form."""
    if isinstance(exc, SyncError):
        return exc
    name = f"gold.{table}"
    reason = str(exc) if isinstance(exc, SettingError) else error_reason(exc, conninfo)
    if isinstance(exc, LakeFault):
        return DataRefused(f"refusing to sync: {exc}; {KEEPS_SERVING}", table=table)
    if isinstance(exc, SettingError):
        if isinstance(exc, ServingDbError) and exc.allow_retries:  # a server that may come back
            return _db_transient(reason, name, during, table)
        if exc.allow_retries:  # the lake's storage could not be reached
            return SyncTransient(
                f"{name}: {reason} (during {during}). Nothing was published; {KEEPS_SERVING}, "
                "and a retry can succeed",
                table=table,
            )
        return SyncMisconfigured(str(exc), table=table)
    state = _sqlstate(exc)
    if state is not None or _is_driver_error(exc):
        if state is not None and state.startswith(_REFUSED_STATES):
            return _db_refused(reason, name, during, table, state)
        if state is not None and state.startswith(_TRANSIENT_STATES):
            return _db_transient(reason, name, during, table)
        refused = (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError)
        if isinstance(exc, refused + _adbc("DataError", "IntegrityError", "ProgrammingError")):
            return _db_refused(reason, name, during, table, state)
        return _db_transient(reason, name, during, table)
    if isinstance(exc, (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)):
        return DataRefused(
            f"refusing to sync {name}: the lake data cannot be loaded during {during}: "
            f"{reason}; {KEEPS_SERVING}",
            table=table,
        )
    if isinstance(exc, OSError):  # the lake's storage (S3, a disk) failed: pyarrow's are OSErrors
        return SyncTransient(
            f"{name}: the lake storage failed during {during}: {type(exc).__name__}: "
            f"{reason}. Nothing was published; {KEEPS_SERVING}, and a retry can succeed",
            table=table,
        )
    return None


def _db_refused(
    reason: str, name: str, during: str, table: str | None, state: str | None
) -> SyncRefused:
    cls = DataRefused if state and state.startswith(("22", "23")) else SyncRefused
    return cls(
        f"refusing to sync {name}: the serving database rejected {during}"
        f"{f' (SQLSTATE {state})' if state else ''}: {reason}; {KEEPS_SERVING}",
        table=table,
    )


def _db_transient(reason: str, name: str, during: str, table: str | None) -> SyncTransient:
    return SyncTransient(
        f"{name}: the serving database failed during {during}: {reason}. "
        f"Nothing was published; {KEEPS_SERVING}, and a retry can succeed",
        table=table,
    )


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) and len(state) == 5 else None


def _is_driver_error(exc: BaseException) -> bool:
    return isinstance(exc, (psycopg.Error, *_adbc("Error")))


def _adbc(*names: str) -> tuple[type[BaseException], ...]:
    try:
        import adbc_driver_manager as adbc
    except ImportError:  # pragma: no cover - a declared dependency
        return ()
    return tuple(getattr(adbc, n) for n in names)


def as_failure(err: SyncError) -> Failure:
    """The run's failure for `err`: its message, retried only when time can heal it."""
    import dagster as dg

    return dg.Failure(
        description=str(err),
        allow_retries=err.retryable,
        metadata={"failure_kind": err.kind},
    )
