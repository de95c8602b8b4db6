"""The one Dagster entry point: ``dagster dev -m assets.definitions`` (or workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from assets.checks import all_checks
from assets.checks_history import history_checks
from assets.checks_labels import label_checks
from assets.history import exposure_sequences, user_history
from assets.ingestion import content_catalog, raw_live_events, raw_short_video_events
from assets.labels import live_outcomes, live_segments, moment_streams
from assets.partitions import hourly_partitions
from resources.storage import landing_from_env, storage_from_env

hourly_ingestion_job = dg.define_asset_job(
    "hourly_ingestion",
    selection=dg.AssetSelection.assets(raw_live_events, raw_short_video_events),
    partitions_def=hourly_partitions,
    description="Raw live and short-video events of one report hour, with their checks.",
)

catalog_job = dg.define_asset_job(
    "catalog_refresh", selection=dg.AssetSelection.assets(content_catalog)
)

# Materialize each hour as soon as it has closed (a few minutes of slack for the sink).
hourly_ingestion_schedule = dg.build_schedule_from_partitioned_job(
    hourly_ingestion_job, minute_of_hour=5
)

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
    assets=[
        content_catalog,
        raw_live_events,
        raw_short_video_events,
        moment_streams,
        live_outcomes,
        live_segments,
        user_history,
        exposure_sequences,
    ],
    asset_checks=[*all_checks, *label_checks, *history_checks],
    jobs=[hourly_ingestion_job, catalog_job],
    schedules=[hourly_ingestion_schedule],
    executor=executor,
    resources={"storage": _storage, "landing": landing_from_env(_storage)},
)
