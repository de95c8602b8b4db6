"""Data-quality rules of the model stage: the progressive-validation property of every
predictions partition, recomputed from the sample tables (not from the trainer's word)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml.quality.runner import Expect, rate_expectation

PROGRESSIVE_COUNTERS = (
    "scored_after_later_samples",  # the recorded latest trained emission is after t0
    "recomputed_after_later_samples",  # the n-th emission of the hour's streams is after t0
    "more_samples_than_emitted",  # claims to have trained on more samples than exist
    "unscored_exposures",  # exposures of the hour with t0 in the hour and no prediction
    "unknown_predictions",  # predictions of exposures that are not the hour's
    "duplicate_predictions",
)


def progressive_frame(
    predictions: pa.Table,
    emitted: np.ndarray,
    exposure_ids: pa.Array,
    exposure_t0: np.ndarray,
    hour_ms: int,
    hour_len_ms: int = 3_600_000,
) -> pd.DataFrame:
    """One row of violation counts. ``emitted``: emission times of every sample of the
    hour's training streams; a prediction made after the model trained on n of them saw
    exactly the n earliest (the replay is in emission order), so the n-th earliest must
    not be after its t0. Every exposure of the hour with t0 inside it must be scored once."""
    emitted = np.sort(np.asarray(emitted, np.int64))
    t0 = predictions.column("t0_ms").to_numpy()
    n = predictions.column("model_samples_in_hour").to_numpy()
    latest = predictions.column("model_max_emit_ms").to_numpy()
    beyond = n > len(emitted)
    nth = np.full(len(n), -1, np.int64)
    ok = (n > 0) & ~beyond
    nth[ok] = emitted[n[ok] - 1]
    ids = predictions.column("exposure_id").combine_chunks()
    in_hour = (exposure_t0 >= hour_ms) & (exposure_t0 < hour_ms + hour_len_ms)
    should = exposure_ids.filter(pa.array(in_hour))
    return pd.DataFrame(
        {
            "scored_after_later_samples": [int((latest > t0).sum())],
            "recomputed_after_later_samples": [int((nth > t0).sum())],
            "more_samples_than_emitted": [int(beyond.sum())],
            "unscored_exposures": [_count_missing(should, ids)],
            "unknown_predictions": [_count_missing(ids, exposure_ids)],
            "duplicate_predictions": [len(ids) - len(ids.unique())],
        }
    )


def _count_missing(values: pa.Array, value_set: pa.Array) -> int:
    """How many of ``values`` are not in ``value_set`` (Arrow hash lookup)."""
    found = pc.sum(pc.is_in(values, value_set=value_set)).as_py() if len(values) else 0
    return len(values) - int(found or 0)


def progressive_expectations() -> list[Expect]:
    return [rate_expectation(c, 0, 0) for c in PROGRESSIVE_COUNTERS]
