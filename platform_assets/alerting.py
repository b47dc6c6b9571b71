"""`check_alert_sensor`: one message when a check or freshness goes red, one when it recovers.

Red means trouble a person should hear of. A failing check is red unless its WARN is one that
`QUIET_WARNINGS` names (a lag within its tolerance, a fingerprint not verified yet): those show
in the UI and page nobody; if such a check turns ERROR (the lag passed its tolerance) that is
the one message, and its recovery follows once. Nothing repeats while a check stays red.

A failed non-blocking check leaves its run green, so run-failure sensors never see it; this
sensor reads check executions from the instance instead, in the order they completed, with a
cursor per check (completion time of the last execution judged, failing or not), and freshness
states per asset. Nothing repeats while a check stays red, whoever evaluated it (a sync run,
the check schedule, or `lake_change_sensor`'s runless evaluation).
"""

import json
from collections.abc import Iterable, Sequence

import dagster as dg

from platform_assets import check_history
from resources.alerts import AlertNotifier

STALE = ("WARN", "FAIL")

# A check's WARN that is not trouble: shown on the asset, never sent (the rule, written once).
QUIET_WARNINGS = {
    "in_sync_with_lake": "a lag within the table's tolerance: the sync is on its way",
    "fingerprint_matches": "not verified yet: the next sync recomputes the checksums",
}


def is_red(check_name: str, failing: bool, severity: str) -> bool:
    """Whether an evaluation is trouble to alert on (see `QUIET_WARNINGS`)."""
    return failing and not (severity == "WARN" and check_name in QUIET_WARNINGS)


def _metadata_text(evaluation: dg.AssetCheckEvaluation) -> str:
    items = [
        f"{k}: {v.value}" for k, v in (evaluation.metadata or {}).items() if hasattr(v, "value")
    ]
    return ", ".join(items[:8])


def _check_transitions(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, state: dict
) -> Iterable[tuple[bool, dg.AssetCheckEvaluation | None]]:
    """(red, evaluation) for every change of red since the cursor, in completion order.

    The cursor is the completion time of the last execution judged: an execution that completes
    after a later-planned one (a sync run overlapping a check-only run, a runless evaluation
    between them) still counts, and one that completed before it is history, not news. Once
    red, a check stays red until it passes: a quiet WARN in between (a revert's new lake state
    lagging again) is no news either way.
    """
    legacy_id = state.pop("id", None)  # cursors written before completion order was used
    state.pop("severity", None)  # cursors written when every WARN was sent
    for record in check_history.completed(instance, check_key):
        at = check_history.completed_at(record)
        if at <= state.get("at", 0) or (legacy_id is not None and record.id <= legacy_id):
            continue
        state["at"] = at
        failing = check_history.failed(record)
        evaluation = record.event.asset_check_evaluation if record.event else None
        severity = evaluation.severity.value if failing and evaluation else "ERROR"
        was_red = state.get("failing", False)
        red = (was_red and failing) or is_red(check_key.name, failing, severity)
        state["failing"] = red
        if red != was_red:
            yield red, evaluation  # went red, or recovered


def build_check_alert_sensor(
    check_keys: Sequence[dg.AssetCheckKey], asset_keys: Sequence[dg.AssetKey]
) -> dg.SensorDefinition:
    @dg.sensor(
        name="check_alert_sensor",
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts once when an asset check or freshness fails, once when it recovers.",
    )
    def check_alert_sensor(  # noqa: ANN202 - Dagster reads a sensor's return annotation
        context: dg.SensorEvaluationContext, alerts: AlertNotifier
    ):
        cursor = json.loads(context.cursor) if context.cursor else {"checks": {}, "freshness": {}}
        sent = undelivered = 0
        for check_key in check_keys:
            name = check_key.to_user_string()
            state = cursor["checks"].setdefault(name, {})
            pending = dict(state)  # committed only once its message is delivered
            for failing, evaluation in _check_transitions(context.instance, check_key, pending):
                severity = evaluation.severity.value if evaluation else "ERROR"
                detail = _metadata_text(evaluation) if evaluation else ""
                title = (
                    f"Check {name} is failing ({severity})"
                    if failing
                    else f"Check {name} recovered"
                )
                if not alerts.send(
                    title, detail or "no details", ok=not failing, fields={"check": name}
                ):
                    undelivered += 1
                    break  # keep the cursor before this transition: retried next tick
                cursor["checks"][name] = dict(pending)
                sent += 1
            else:
                cursor["checks"][name] = pending
        records = context.instance.event_log_storage.get_freshness_state_records(list(asset_keys))
        for key, record in records.items():
            name = key.to_user_string()
            value = record.freshness_state.value
            was_stale = cursor["freshness"].get(name, "PASS") in STALE
            if (value in STALE) != was_stale and value != "UNKNOWN":
                ok = value not in STALE
                if not alerts.send(
                    f"Freshness of {name}: {value}",
                    "fresh again" if ok else "its last materialization is older than its policy",
                    ok=ok,
                    fields={"asset": name},
                ):
                    undelivered += 1
                    continue  # state not recorded: retried next tick
                sent += 1
            cursor["freshness"][name] = value
        context.log.info(f"{sent} alert(s) sent to {alerts.target}")
        if undelivered:
            context.log.warning(
                f"{undelivered} alert(s) could not be delivered to {alerts.target}; "
                "retrying on the next tick"
            )
        return dg.SensorResult(cursor=json.dumps(cursor))

    return check_alert_sensor
