"""The one Dagster entry point: ``dagster dev -m assets.definitions`` (or workspace.yaml)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from assets.content import content_checks, live_segments
from assets.cross import exposure_sequences, user_history
from assets.cross_checks import cross_checks
from assets.ingestion import content_catalog, raw_live_events, raw_short_video_events
from assets.ingestion_checks import ingestion_checks
from assets.models import moment_cross_eval, moment_cross_training
from assets.models_checks import model_checks
from assets.moment import live_outcomes, moment_streams, user_activity
from assets.moment_checks import moment_checks
from assets.partitions import START_MS, hourly_partitions, model_partitions
from ml.hours import HOUR_MS, partition_key
from ml.moment.emission_hour import OUTCOME_LOOKAHEAD_HOURS
from resources.device import device_from_env
from resources.storage import landing_from_env, storage_from_env

HOURLY = [
    raw_live_events,
    raw_short_video_events,
    user_activity,
    moment_streams,
    live_segments,
    user_history,
    exposure_sequences,
]


def _names(*defs_: dg.AssetsDefinition) -> list[str]:
    return [k.to_user_string() for d in defs_ for k in sorted(d.keys, key=str)]


# Asset names for `--select` and tests: the raw + Moment side, and the Cross side.
MOMENT_ASSET_NAMES = _names(
    raw_live_events, raw_short_video_events, user_activity, moment_streams, live_segments
)
CROSS_ASSET_NAMES = _names(user_history, exposure_sequences)
HOURLY_ASSET_NAMES = MOMENT_ASSET_NAMES + CROSS_ASSET_NAMES
MODEL_ASSET_NAMES = _names(moment_cross_training)

hourly_ingestion_job = dg.define_asset_job(
    "hourly_ingestion",
    selection=dg.AssetSelection.assets(raw_live_events, raw_short_video_events),
    partitions_def=hourly_partitions,
    description="Raw live and short-video events of one report hour, with their checks.",
)

hourly_pipeline_job = dg.define_asset_job(
    "hourly_pipeline",
    selection=dg.AssetSelection.assets(*HOURLY),
    partitions_def=hourly_partitions,
    description="Everything of one hour that needs only that hour and earlier: raw events, "
    "user activity, exposures, the three label streams, segments, user history, GSU sequences.",
)

hourly_outcomes_job = dg.define_asset_job(
    "hourly_outcomes",
    selection=dg.AssetSelection.assets(live_outcomes),
    partitions_def=hourly_partitions,
    description=f"Final outcomes of an hour, once the {OUTCOME_LOOKAHEAD_HOURS} hours after it exist.",
)

model_training_job = dg.define_asset_job(
    "model_training",
    selection=dg.AssetSelection.assets(moment_cross_training),
    partitions_def=model_partitions,
    description="One variant's streaming training of one hour: replay the hour's samples in "
    "emission order, scoring each exposure before training on anything emitted after it.",
)

model_evaluation_job = dg.define_asset_job(
    "model_evaluation",
    selection=dg.AssetSelection.assets(moment_cross_eval),
    partitions_def=model_partitions,
    description="One variant's predictions of an hour against the hour's final outcomes.",
)

catalog_job = dg.define_asset_job(
    "catalog_refresh", selection=dg.AssetSelection.assets(content_catalog)
)

# Each hour as soon as it has closed (a few minutes of slack for the sink).
hourly_pipeline_schedule = dg.build_schedule_from_partitioned_job(
    hourly_pipeline_job, minute_of_hour=5
)


@dg.schedule(job=hourly_outcomes_job, cron_schedule="15 * * * *", execution_timezone="UTC")
def hourly_outcomes_schedule(context: dg.ScheduleEvaluationContext):
    """Outcomes of the hour whose look-ahead has just closed (H + lookahead + 1 <= now)."""
    now_ms = int(context.scheduled_execution_time.astimezone(dt.UTC).timestamp() * 1000)
    hour_ms = now_ms - now_ms % HOUR_MS - (OUTCOME_LOOKAHEAD_HOURS + 1) * HOUR_MS
    if hour_ms < START_MS:
        return dg.SkipReason("no hour has its look-ahead complete yet")
    key = partition_key(hour_ms)
    return dg.RunRequest(run_key=key, partition_key=key)


# Steps run in forked children of a server that has already imported the code and GX,
# so a step starts in milliseconds instead of re-importing for seconds.
executor = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 2,
        "start_method": {
            "forkserver": {"preload_modules": ["assets.definitions", "great_expectations"]}
        },
    }
)

_storage = storage_from_env()

defs = dg.Definitions(
    assets=[content_catalog, *HOURLY, live_outcomes, moment_cross_training, moment_cross_eval],
    asset_checks=[*ingestion_checks, *moment_checks, *cross_checks, *content_checks, *model_checks],
    jobs=[
        hourly_ingestion_job,
        hourly_pipeline_job,
        hourly_outcomes_job,
        model_training_job,
        model_evaluation_job,
        catalog_job,
    ],
    schedules=[hourly_pipeline_schedule, hourly_outcomes_schedule],
    executor=executor,
    resources={
        "storage": _storage,
        "landing": landing_from_env(_storage),
        "device": device_from_env(),
    },
)
