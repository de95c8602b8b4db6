"""DeepCTR-Torch's ID baselines on segment windows: one prediction per segment with a
target, seeded, and never from the segment's own counts (they hold its CTR)."""

import numpy as np
import pytest
import torch

from ml.models.content_baselines import BASELINES, BaselineConfig, IdBaseline
from ml.train.content_tensors import ContentBatch


def hour(seed: int, n: int = 24, w: int = 20) -> tuple[ContentBatch, np.ndarray, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 20, (n, w, 7), generator=g).float()
    b = ContentBatch(
        visual=torch.zeros(n, w, 1), text=torch.zeros(n, w, 1),
        streamer_id=torch.randint(1, 50, (n,), generator=g),
        y=torch.rand(n, w, generator=g) * 0.5, m=torch.rand(n, w, generator=g) < 0.8,
        counts=counts,
    )  # fmt: skip
    end_ms = np.full(n, 1_767_225_600_000 + seed * 3_600_000)
    return b, end_ms, np.arange(n) + 1000


@pytest.mark.parametrize("name", BASELINES)
def test_each_baseline_trains_hour_after_hour_and_predicts_each_segment(name):
    cfg = BaselineConfig(name=name, batch_size=64)
    model = IdBaseline(cfg)
    for s in (1, 2):
        assert model.fit_hour(*hour(s)) == int(hour(s)[0].m.sum())
    b, end, room = hour(3)
    p = model.predict(b, end, room)
    assert p.shape == (24, 20)
    m = b.m.numpy()
    assert ((p[m] > 0) & (p[m] < 1)).all() and (p[~m] == 0).all()
    again = IdBaseline(cfg)
    for s in (1, 2):
        again.fit_hour(*hour(s))
    np.testing.assert_array_equal(again.predict(b, end, room), p)  # same seed, same bytes


def test_a_segments_own_counts_never_reach_its_prediction():
    model = IdBaseline(BaselineConfig(name="WDL"))
    model.fit_hour(*hour(1))
    b, end, room = hour(4)
    b = ContentBatch(**{**b.__dict__, "m": torch.ones(24, 20, dtype=torch.bool)})
    base = model.predict(b, end, room)
    moved = b.counts.clone()
    moved[:, 7] += 100.0  # segment 7's own counts
    p = model.predict(ContentBatch(**{**b.__dict__, "counts": moved}), end, room)
    np.testing.assert_array_equal(p[:, 7], base[:, 7])
    assert not np.allclose(p[:, 8], base[:, 8])  # the next segment does read them
    np.testing.assert_array_equal(np.delete(p, 8, axis=1), np.delete(base, 8, axis=1))
