"""segment_windows rows -> ContentCTR tensors.

A window's fixed-size list columns are (W x F) values laid out row-major in one buffer, so
each column is its flat values reshaped to (N, W, F): no per-row Python, one copy per
column (Arrow's buffers are read-only; a tensor over them would be writable). Widths come
from the list sizes (the data), W from the ``ctr`` column.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import pyarrow as pa
import torch

from ml.content.windows import COUNT_FEATURES


@dataclass(frozen=True)
class ContentBatch:
    visual: torch.Tensor  # (N, W, Fv) float32
    text: torch.Tensor  # (N, W, Ft) float32
    streamer_id: torch.Tensor  # (N,) int64 raw author ids
    y: torch.Tensor  # (N, W) float32 soft CTR targets
    m: torch.Tensor  # (N, W) bool: the segment had a show (a target)
    counts: torch.Tensor  # (N, W, len(COUNT_FEATURES)) float32, known at the window's end

    @property
    def size(self) -> int:
        return self.y.shape[0]

    def to(self, device, non_blocking: bool = False) -> ContentBatch:
        return replace(
            self,
            **{
                f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                for f in fields(self)
            },
        )

    def take(self, rows: torch.Tensor) -> ContentBatch:
        return replace(self, **{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def _values(table: pa.Table, name: str, n: int, w: int, dtype=np.float32) -> np.ndarray:
    """(N, W, F) writable copy of a fixed-size list column."""
    flat = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.astype(dtype, copy=True).reshape(n, w, -1)


def content_batch(table: pa.Table) -> ContentBatch:
    """All windows of a segment_windows table as one ContentBatch."""
    n = table.num_rows
    w = table.schema.field("ctr").type.list_size
    shows = _values(table, "shows", n, w, np.int32)[..., 0]
    counts = _values(table, "counts", n, w)
    if counts.shape[-1] != len(COUNT_FEATURES):
        raise ValueError(
            f"counts hold {counts.shape[-1]} features per segment, not {len(COUNT_FEATURES)}"
        )
    return ContentBatch(
        visual=torch.from_numpy(_values(table, "visual", n, w)),
        text=torch.from_numpy(_values(table, "text", n, w)),
        streamer_id=torch.from_numpy(
            table.column("author_id").to_numpy().astype(np.int64, copy=True)
        ),
        y=torch.from_numpy(_values(table, "ctr", n, w)[..., 0]),
        m=torch.from_numpy(shows > 0),
        counts=torch.from_numpy(counts),
    )
