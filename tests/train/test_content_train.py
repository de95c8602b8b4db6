"""ContentCTR hour by hour: seeded, exactly resumable through a weights_only checkpoint,
scores before it trains, and learns a planted signal."""

import dataclasses
import io

import pytest
import torch

from ml.models.content_ctr import ContentCTRConfig
from ml.models.content_losses import ContentLossConfig
from ml.train.content_tensors import ContentBatch
from ml.train.content_train import ContentTrainConfig, ContentTrainer

MODEL = ContentCTRConfig(visual_dim=6, text_dim=4, streamer_rows=64, d=16, n_heads=2,
                         fusion_layers=1, decoder_layers=1, window=8)  # fmt: skip
LOSS = ContentLossConfig(n_negatives=3)
TRAIN = ContentTrainConfig(batch_size=8, lr=3e-3)


def hour(seed: int, n: int = 32) -> ContentBatch:
    """Windows whose CTR is planted in the first visual feature (a highlight signal)."""
    g = torch.Generator().manual_seed(seed)
    visual = torch.randn(n, 8, 6, generator=g)
    y = torch.sigmoid(2.0 * visual[..., 0] - 1.5)
    return ContentBatch(
        visual=visual, text=torch.randn(n, 8, 4, generator=g),
        streamer_id=torch.randint(1, 10**9, (n,), generator=g), y=y,
        m=torch.rand(n, 8, generator=g) < 0.9, counts=torch.zeros(n, 8, 7),
    )  # fmt: skip


def roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_two_hours_in_one_go_equal_a_restart_between_them_bit_for_bit():
    one = ContentTrainer(MODEL, LOSS, TRAIN)
    one.train_hour(hour(1))
    stats_one = one.train_hour(hour(2))
    first = ContentTrainer(MODEL, LOSS, TRAIN)
    first.train_hour(hour(1))
    saved = roundtrip(first.state())
    second = ContentTrainer(MODEL, LOSS, TRAIN)
    second.load_state(saved)
    stats_two = second.train_hour(hour(2))
    assert stats_one == stats_two
    a, b = one.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert second.steps == one.steps == 8 and second.hours == 2


def test_scores_come_from_the_model_before_it_trains_on_the_hour():
    t = ContentTrainer(MODEL, LOSS, TRAIN)
    h = hour(3)
    before = t.predict(h)
    assert before.shape == (32, 8) and ((before > 0) & (before < 1)).all()
    assert torch.equal(t.predict(h), before)  # scoring changes nothing
    t.train_hour(h)
    assert not torch.equal(t.predict(h), before)


def test_it_learns_the_planted_signal_and_refuses_another_configuration():
    t = ContentTrainer(MODEL, LOSS, dataclasses.replace(TRAIN, epochs=3))
    losses = [t.train_hour(hour(10 + i))["point"] for i in range(6)]
    assert losses[-1] < losses[0]
    other = ContentTrainer(dataclasses.replace(MODEL, d=8), LOSS, TRAIN)
    with pytest.raises(ValueError, match="another configuration"):
        other.load_state(t.state())


def test_cosine_schedule_decays_to_zero_over_its_horizon():
    t = ContentTrainer(MODEL, LOSS, dataclasses.replace(TRAIN, schedule="cosine", horizon_steps=4))
    assert t._lr() == pytest.approx(TRAIN.lr)
    t.train_hour(hour(4))  # 4 steps
    assert t._lr() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        ContentTrainConfig(schedule="linear")
