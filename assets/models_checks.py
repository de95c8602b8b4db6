"""Asset checks of the model stage: the progressive-validation property, proved on every
predictions partition from the sample tables (blocking: an evaluation of predictions that
saw the future would flatter the model)."""

import dagster as dg
import numpy as np

from assets.gates import lake_check
from assets.lake import (
    LIVE_EXPOSURES,
    LIVE_PREDICTIONS,
    STREAM_ASSETS,
    read_partition,
    read_variant_partition,
)
from assets.metadata import check_result
from assets.partitions import model_partition, model_partitions
from ml import quality
from ml.quality.models import progressive_expectations, progressive_frame
from ml.train.stream import PREDICTION_SCHEMA
from ml.train.variants import variant_configs
from resources.storage import LakeStorage


@lake_check(
    asset=LIVE_PREDICTIONS,
    name="progressive_validation",
    partitions_def=model_partitions,
    blocking=True,
    description="No exposure was scored by a model that had trained on a sample emitted after "
    "its t0 (recomputed from the hour's sample tables in emission order), and every exposure "
    "of the hour with t0 in the hour is scored exactly once.",
)
def progressive_validation(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, hour_ms, variant = model_partition(context)
    lake = storage.store()
    predictions = read_variant_partition(lake, LIVE_PREDICTIONS, variant, key, PREDICTION_SCHEMA)
    _, train_cfg = variant_configs(variant)
    emitted = np.concatenate(
        [
            read_partition(lake, STREAM_ASSETS[s], key, columns=["emit_ms"]).column(0).to_numpy()
            for s in train_cfg.streams
        ]
    )
    exposures = read_partition(lake, LIVE_EXPOSURES, key, columns=["exposure_id", "t0_ms"])
    frame = progressive_frame(
        predictions,
        emitted,
        exposures.column("exposure_id").combine_chunks(),
        exposures.column("t0_ms").to_numpy(),
        hour_ms,
    )
    outcome = quality.validate(frame, progressive_expectations(), "progressive_validation")
    return check_result(
        outcome,
        predictions=predictions.num_rows,
        samples_of_hour=len(emitted),
        **{k: int(frame[k].iloc[0]) for k in frame.columns},
    )


model_checks = [progressive_validation]
