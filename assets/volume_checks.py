"""Volume gates on the Moment side: exposures and training samples of an hour against the
hours before it (ml.quality.volume). Blocking: a model must not train on an hour that lost
most of its exposures."""

import dagster as dg
import pandas as pd

from assets.gates import lake_check
from assets.lake import FAST_SAMPLES, LIVE_EXPOSURES, STREAM_ASSETS, require_published, window_keys
from assets.metadata import check_result
from assets.partitions import hourly_partitions, partition_hour
from ml import quality
from ml.io.lake import partition_dir
from ml.quality.volume import VOLUME_BAND, VOLUME_HOURS, volume_verdict
from resources.storage import LakeStorage

# The manifest figure holding each asset's row count (one manifest for the whole hour).
ROW_FIGURE = {LIVE_EXPOSURES: "exposures", **{a: a for a in STREAM_ASSETS.values()}}
GATED = [LIVE_EXPOSURES, STREAM_ASSETS["moment"], FAST_SAMPLES]


def build_volume_check(asset: str) -> dg.AssetChecksDefinition:
    low, high = VOLUME_BAND

    @lake_check(
        asset=asset,
        name="volume",
        partitions_def=hourly_partitions,
        blocking=True,
        description=f"Rows of the hour between {low:g}x and {high:g}x the median of the previous "
        f"{VOLUME_HOURS} hours (LIVECROSS_VOLUME_BAND); an hour that lost most of its rows "
        "upstream is not trained on.",
    )
    def volume(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, hour_ms = partition_hour(context)
        lake = storage.store()
        rows = int(require_published(lake, asset, key)[ROW_FIGURE[asset]])
        previous = []
        for k in window_keys(hour_ms, VOLUME_HOURS)[:-1]:
            man = lake.manifest(partition_dir(asset, k))
            if man is not None:
                previous.append(int(man[ROW_FIGURE[asset]]))
        v = volume_verdict(rows, previous)
        ratio = 1.0 if v.ratio is None else v.ratio
        outcome = quality.validate(
            pd.DataFrame({"volume_ratio": [ratio]}),
            [quality.rate_expectation("volume_ratio", high, low)],
            f"{asset}_volume",
        )
        return check_result(
            outcome,
            rows=rows,
            volume_ratio=ratio,
            baseline_rows=-1.0 if v.baseline is None else v.baseline,
            verdict=v.reason,
        )

    return volume


volume_checks = [build_volume_check(a) for a in GATED]
