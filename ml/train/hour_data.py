"""What one hour of streaming training reads: the hour's samples of the training streams,
and the exposures (with sequences) they and the hour's scoring refer to.

The lake is reached through a small reader interface, so the Dagster layer decides what a
missing partition means (a clear failure naming it) and tests can hand in tables. Only
exposures some sample or the hour's scoring needs are kept: a look-back hour contributes
the few exposures whose slow / late moment samples fall in H, not its whole table.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ml.cross.catalog_view import CatalogView
from ml.models.ranking import MomentCrossConfig
from ml.train.stream import HourData, TrainConfig
from ml.train.tensors import (
    SAMPLE_COLUMNS,
    ContentTable,
    MissingExposureError,
    concat_rows,
    exposure_rows,
    join_samples,
)


class HourReader(Protocol):
    def samples(self, stream: str, key: str, columns: list[str]) -> pa.Table: ...

    def exposures(self, key: str, columns: list[str] | None = None) -> pa.Table: ...

    def sequences(self, key: str) -> pa.Table: ...


def hour_data(
    reader: HourReader,
    hour_ms: int,
    hour_key: str,
    window: list[str],
    catalog: CatalogView,
    model_cfg: MomentCrossConfig,
    train_cfg: TrainConfig,
) -> HourData:
    """HourData of ``hour_key`` whose samples may refer to exposures of ``window`` (the
    look-back keys, oldest first, ending with ``hour_key``)."""
    if not window or window[-1] != hour_key:
        raise ValueError(f"the window must end with the hour itself: {window}")
    content = ContentTable.from_catalog(catalog)
    samples = {s: reader.samples(s, hour_key, SAMPLE_COLUMNS) for s in train_cfg.streams}
    needed = pa.chunked_array(
        [t.column("exposure_id").combine_chunks() for t in samples.values()], pa.string()
    ).unique()
    parts, score_rows, base = [], None, 0
    for key in window:
        ex = reader.exposures(key)
        if key != hour_key:
            ex = ex.filter(pc.is_in(ex.column("exposure_id"), value_set=needed))
        seqs = None
        if model_cfg.use_cross:
            seqs = reader.sequences(key)
            seqs = seqs.filter(
                pc.is_in(seqs.column("exposure_id"), value_set=ex.column("exposure_id"))
            )
        rows = exposure_rows(ex, seqs, content, train_cfg.freshness, model_cfg.seq_len)
        if key == hour_key:
            score_rows = np.arange(base, base + len(rows), dtype=np.int64)
        parts.append(rows)
        base += len(rows)
    all_rows = concat_rows(parts)
    joined = [join_samples(s, t, all_rows) for s, t in samples.items()]
    return HourData(
        hour_ms=hour_ms,
        rows=all_rows,
        samples=joined,
        score_rows=score_rows,
        content=torch.from_numpy(content.table),
    )


__all__ = ["HourData", "HourReader", "MissingExposureError", "hour_data"]
