"""The one Dagster entry point: ``dagster dev -m assets.definitions`` (or workspace.yaml)."""

from __future__ import annotations

import assets.quiet_warnings  # noqa: F401  # isort: skip  (first: mutes preview/beta noise)
import os

import dagster as dg

from assets.content import content_checks, live_segments, segment_windows
from assets.content_models import content_ctr_eval, content_ctr_training
from assets.content_study import content_study, content_tables_job
from assets.cross import exposure_sequences, user_history
from assets.cross_checks import cross_checks
from assets.ingestion import content_catalog, raw_live_events, raw_short_video_events
from assets.ingestion_checks import ingestion_checks
from assets.models import moment_cross_eval, moment_cross_training
from assets.models_checks import model_checks
from assets.moment import live_outcomes, moment_streams, user_activity
from assets.moment_checks import moment_checks
from assets.partitions import hourly_partitions, install_partition_key_hint, model_partitions
from assets.sensors import build_landing_ready_sensor, outcome_automation_sensor
from assets.studies import ablation, ablation_study_job
from assets.volume_checks import volume_checks
from ml.moment.emission_hour import OUTCOME_LOOKAHEAD_HOURS
from resources.device import device_from_env
from resources.storage import landing_from_env, storage_from_env

# The hourly assets: the raw + Moment side, then the Cross side (the hourly_pipeline job).
MOMENT_SIDE = [
    content_catalog,
    raw_live_events,
    raw_short_video_events,
    user_activity,
    moment_streams,
    live_segments,
    segment_windows,
]
CROSS_SIDE = [user_history, exposure_sequences]
HOURLY = MOMENT_SIDE + CROSS_SIDE


def _names(*defs_: dg.AssetsDefinition) -> list[str]:
    return [k.to_user_string() for d in defs_ for k in sorted(d.keys, key=str)]


# Asset names for `--select` and tests.
MOMENT_ASSET_NAMES = _names(*MOMENT_SIDE)
CROSS_ASSET_NAMES = _names(*CROSS_SIDE)
HOURLY_ASSET_NAMES = MOMENT_ASSET_NAMES + CROSS_ASSET_NAMES
MODEL_ASSET_NAMES = _names(moment_cross_training)

hourly_ingestion_job = dg.define_asset_job(
    "hourly_ingestion",
    selection=dg.AssetSelection.assets(content_catalog, raw_live_events, raw_short_video_events),
    partitions_def=hourly_partitions,
    description="The catalog as of the end of one hour, and the raw live and short-video "
    "events reported in that hour, with their checks.",
)

hourly_pipeline_job = dg.define_asset_job(
    "hourly_pipeline",
    selection=dg.AssetSelection.assets(*HOURLY),
    partitions_def=hourly_partitions,
    description="Everything of one hour that needs only that hour and earlier: the catalog, "
    "raw events, user activity, exposures, the three label streams, segments and their "
    "20-segment windows, user history, and each impression's history sequences.",
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

content_ctr_job = dg.define_asset_job(
    "content_ctr",
    selection=dg.AssetSelection.assets(content_ctr_training, content_ctr_eval),
    partitions_def=hourly_partitions,
    description="ContentCTR of one hour: score the hour's segment windows with the model of "
    "the hour before, train on them, and evaluate the scores (Kendall tau, MAE, highlights).",
)

outcome_automation = outcome_automation_sensor()
landing_ready_sensor = build_landing_ready_sensor(
    hourly_pipeline_job, [k for a in HOURLY for k in a.keys]
)

# Steps run in forked children of a server that has already imported the code and GX,
# so a step starts in milliseconds instead of re-importing for seconds. On a small
# machine, or where per-step processes cost more than they save (an hour of a small
# world), LIVECROSS_EXECUTOR=in_process runs a run's steps one after another in its
# own process.
EXECUTOR = os.environ.get("LIVECROSS_EXECUTOR", "multiprocess")
if EXECUTOR == "in_process":
    executor = dg.in_process_executor
elif EXECUTOR == "multiprocess":
    executor = dg.multiprocess_executor.configured(
        {
            "max_concurrent": 2,
            "start_method": {
                "forkserver": {"preload_modules": ["assets.definitions", "great_expectations"]}
            },
        }
    )
else:
    raise ValueError(f"LIVECROSS_EXECUTOR={EXECUTOR!r}: use multiprocess or in_process")

install_partition_key_hint()  # the CLI's error for an unknown key, with the format
_storage = storage_from_env()

defs = dg.Definitions(
    assets=[
        *HOURLY,
        content_ctr_training,
        content_ctr_eval,
        live_outcomes,
        moment_cross_training,
        moment_cross_eval,
        ablation,
        content_study,
    ],
    asset_checks=[
        *ingestion_checks,
        *moment_checks,
        *volume_checks,
        *cross_checks,
        *content_checks,
        *model_checks,
    ],
    jobs=[
        hourly_ingestion_job,
        hourly_pipeline_job,
        hourly_outcomes_job,
        model_training_job,
        model_evaluation_job,
        content_ctr_job,
        ablation_study_job,
        content_tables_job,
    ],
    sensors=[landing_ready_sensor, outcome_automation],
    executor=executor,
    resources={
        "storage": _storage,
        "landing": landing_from_env(_storage),
        "device": device_from_env(),
    },
)
