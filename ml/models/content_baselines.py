"""ContentCTR's ID baselines (the paper's Table 1, top block) from an established library:
DeepCTR-Torch's WDL, DeepFM, DCNMix (DCN-M) and DIFM, never rewritten here.

Each regresses a segment's CTR from ID and count features on the same windows ContentCTR
sees, one sample per (window, segment with a target): the streamer id, the room id and the
hour of day (sparse), and the previous segment's seven counts as known at the window's end
(dense, log1p). A segment's own counts are not a feature: its enters over its impressions
are its CTR, the target itself. Trained with binary cross-entropy on the soft CTR (as
ContentCTR's L_point), hour after hour (``fit_hour`` continues from the hour before);
``predict`` gives (N, W) like ContentCTR, so both are evaluated the same way.

deepctr-torch is imported on first use (``ml.models.deepctr.import_deepctr``: its online
version check kept off stdout).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import numpy as np
import torch

from ml.content.windows import COUNT_FEATURES
from ml.models.blocks import hash_ids
from ml.models.deepctr import import_deepctr
from ml.train.content_tensors import ContentBatch

BASELINES = ("WDL", "DeepFM", "DCNMix", "DIFM")
HOUR_OF_DAY_MS = 3_600_000


@dataclass(frozen=True)
class BaselineConfig:
    name: str = "DIFM"
    embedding_dim: int = 8
    id_rows: int = 1 << 14  # hashed streamer / room vocabularies
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        if self.name not in BASELINES:
            raise ValueError(f"baseline {self.name!r}: one of {BASELINES}")


def baseline_features(batch: ContentBatch, end_ms: np.ndarray, room_id: np.ndarray, cfg):
    """(inputs {name: (n,)}, targets (n,), rows (n, 2) = (window, segment)) of every segment
    with a target."""
    n, w = batch.y.shape
    m = batch.m.numpy()
    win, seg = np.nonzero(m)
    counts = batch.counts.numpy()
    prev = np.zeros((n, w, len(COUNT_FEATURES)), np.float32)
    prev[:, 1:] = counts[:, :-1]  # the previous segment's counts (none before the first)
    hour = ((end_ms // HOUR_OF_DAY_MS) % 24).astype(np.int64)
    streamer = hash_ids(batch.streamer_id, cfg.id_rows, salt=21).numpy()
    room_ids = torch.from_numpy(np.array(room_id, np.int64))  # a writable copy
    room = hash_ids(room_ids, cfg.id_rows, salt=22).numpy()
    inputs = {
        "streamer": streamer[win], "room": room[win], "hour": hour[win],
        **{f"prev_{c}": np.log1p(prev[win, seg, i]) for i, c in enumerate(COUNT_FEATURES)},
    }  # fmt: skip
    return inputs, batch.y.numpy()[win, seg], np.stack([win, seg], 1)


class IdBaseline:
    """One DeepCTR-Torch model over the windows' ID and count features."""

    def __init__(self, cfg: BaselineConfig, device: str = "cpu"):
        lib = import_deepctr()
        models, SparseFeat, DenseFeat = lib.models, lib.inputs.SparseFeat, lib.inputs.DenseFeat
        self.cfg = cfg
        d = cfg.embedding_dim
        columns = [
            SparseFeat("streamer", cfg.id_rows, d), SparseFeat("room", cfg.id_rows, d),
            SparseFeat("hour", 24, d),
            *[DenseFeat(f"prev_{c}", 1) for c in COUNT_FEATURES],
        ]  # fmt: skip
        torch.manual_seed(cfg.seed)
        self.model = getattr(models, cfg.name)(
            columns, columns, task="binary", device=device, seed=cfg.seed
        )
        self.model.compile(
            torch.optim.Adam(self.model.parameters(), lr=cfg.lr), "binary_crossentropy"
        )

    def predict(self, batch: ContentBatch, end_ms, room_id) -> np.ndarray:
        """Predicted CTR (N, W); 0 where a segment has no target (nothing to rank)."""
        inputs, _, rows = baseline_features(batch, end_ms, room_id, self.cfg)
        out = np.zeros(tuple(batch.y.shape), np.float32)
        if len(rows):
            with contextlib.redirect_stdout(sys.stderr):
                p = self.model.predict(inputs, batch_size=4096).reshape(-1)
            out[rows[:, 0], rows[:, 1]] = p
        return out

    def fit_hour(self, batch: ContentBatch, end_ms, room_id) -> int:
        """One pass over the hour's segments (seeded order); -> samples trained on."""
        inputs, y, _ = baseline_features(batch, end_ms, room_id, self.cfg)
        if len(y):
            with contextlib.redirect_stdout(sys.stderr):
                self.model.fit(inputs, y, batch_size=self.cfg.batch_size, epochs=1, verbose=0)
        return len(y)
