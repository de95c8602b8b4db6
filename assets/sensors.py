"""What starts an hour: the landing zone's completion markers, not the wall clock.

``landing_ready_sensor`` requests ``hourly_pipeline`` for the oldest hour that is not yet
fully materialized, once its landing hour is complete (ml.ingest.readiness) and the hour
before it is done: every hour reads the one before (dedup, user activity, history), so
hours go one at a time, in order. An hour that is not ready, or whose run failed, is a
skip with the reason, never a failing run. Outcomes and evaluations wait for the hours
they look ahead to, by an automation condition: materialized once every input exists.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus  # no public alias in 1.13

from assets.lake import LIVE_OUTCOMES, MOMENT_CROSS_EVAL
from assets.partitions import hourly_partitions
from ml.hours import parse_hour
from ml.ingest.readiness import not_ready_reason
from resources.storage import LandingZone

MAX_HOURS_SCANNED = 24 * 400  # partitions looked at per tick (oldest first)


def _done_hours(instance: dg.DagsterInstance, asset_keys: list[dg.AssetKey]) -> set[str]:
    """Hours every one of ``asset_keys`` has been materialized for."""
    done: set[str] | None = None
    for key in asset_keys:
        keys = instance.get_materialized_partitions(key)
        done = set(keys) if done is None else done & keys
    return done or set()


def _run_state(instance: dg.DagsterInstance, key: str) -> str | None:
    """The status of the newest run of hour ``key`` (any job, a backfill's too)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}), limit=1)
    return runs[0].status.value if runs else None


def build_landing_ready_sensor(job: dg.UnresolvedAssetJobDefinition, asset_keys: list[dg.AssetKey]):
    @dg.sensor(
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Starts the hourly pipeline for the oldest hour not yet built, once the "
        "landing zone holds all of it (both event sinks' completion markers, the segment "
        "features, a catalog export covering the hour) and the hour before it is done. Hours "
        "go in order, one at a time; a missing or unfinished hour is skipped with the reason.",
    )
    def landing_ready_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        done = _done_hours(context.instance, asset_keys)
        keys = hourly_partitions.get_partition_keys()[:MAX_HOURS_SCANNED]
        todo = next((k for k in keys if k not in done), None)
        if todo is None:
            return dg.SkipReason("every hour so far is built")
        if context.instance.get_backfills(status=BulkActionStatus.REQUESTED, limit=1):
            return dg.SkipReason("a backfill is running: hours wait for it to finish")
        state = _run_state(context.instance, todo)
        if state in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED"):
            return dg.SkipReason(f"hour {todo} is running ({state})")
        if state == "FAILURE":
            return dg.SkipReason(
                f"hour {todo}: its last run failed; later hours wait for it. Fix the cause "
                "(the run's error names it) and re-materialize the hour; the sensor then goes on"
            )
        reason = not_ready_reason(landing.store(), parse_hour(todo))
        if reason is not None:
            return dg.SkipReason(f"hour {todo} is not ready: {reason}")
        return dg.RunRequest(run_key=f"{todo}:{len(done)}", partition_key=todo)

    return landing_ready_sensor


def outcome_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "outcome_automation",
        target=dg.AssetSelection.assets(LIVE_OUTCOMES, MOMENT_CROSS_EVAL),
        default_status=dg.DefaultSensorStatus.STOPPED,
        minimum_interval_seconds=30,
        description="Materializes final outcomes and evaluations once the hours they look "
        "ahead to exist, instead of failing without them.",
    )
