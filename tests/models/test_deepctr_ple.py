"""DeepCTR-Torch's PLE as a ranking model on our inputs: logits equal the library's own
probabilities, padding cannot reach the output, ids are hashed as ours are, and it trains
in the streaming trainer with an exact resume (on a real simulated lake)."""

import dataclasses

import numpy as np
import pytest
import torch

from ml.models.deepctr import DeepCtrPleRanker
from ml.models.ranking import MomentCrossModel
from ml.schema import TASKS
from ml.train.checkpoint import checkpoint_bytes, load_checkpoint
from ml.train.stream import StreamTrainer, TrainConfig
from tests.train.test_stream import SMALL, data_of, lake  # noqa: F401  (the module's lake)

pytestmark = pytest.mark.slow
PLE_CFG = dataclasses.replace(SMALL, family="deepctr_ple")


@pytest.fixture(scope="module")
def batch(lake):  # noqa: F811
    data = data_of(lake, 0, TrainConfig(), PLE_CFG)
    return data.rows.inputs(np.arange(min(len(data.rows), 64)), data.content)


def test_forward_gives_the_logits_of_the_librarys_probabilities(batch):
    model = DeepCtrPleRanker(PLE_CFG, seed=0)
    model.eval()
    with torch.no_grad():
        logits = model(batch)
        for out in model.ple.out:
            out.task = "binary"  # the library's own output: sigmoid(logit + bias)
        probs = model.ple(model.columns(batch))
    assert logits.shape == (batch.batch_size, len(TASKS))
    torch.testing.assert_close(torch.sigmoid(logits), probs, rtol=1e-6, atol=1e-7)


def test_padded_positions_cannot_reach_the_output(batch):
    model = DeepCtrPleRanker(PLE_CFG, seed=0).eval()
    pad = ~batch.seq_mask
    assert pad.any() and batch.seq_mask.any()
    noisy = dataclasses.replace(
        batch,
        seq_item=torch.where(pad, 987_654_321, batch.seq_item),
        seq_author=torch.where(pad, 123_457, batch.seq_author),
        seq_category=torch.where(pad, 7, batch.seq_category),
    )
    with torch.no_grad():
        torch.testing.assert_close(model(noisy), model(batch))


def test_ids_hash_into_the_same_rows_as_our_models_tables(batch):
    ours, ple = MomentCrossModel(SMALL), DeepCtrPleRanker(PLE_CFG)
    for field in ("user_id", "room_id", "author_id", "seq_item", "seq_author"):
        ids = getattr(batch, field)
        assert torch.equal(ple.table_rows(field, ids), ours.table_rows(field, ids))
    hashed = ple.hash_ids(batch)
    with torch.no_grad():  # pre-hashed inputs (the loader's) give the same output
        torch.testing.assert_close(ple.eval()(hashed), ple(batch))


def test_it_trains_in_the_stream_and_resumes_exactly(lake):  # noqa: F811
    cfg = TrainConfig(seed=4, batch_size=64)
    one_go = StreamTrainer(PLE_CFG, cfg)
    assert isinstance(one_go.model, DeepCtrPleRanker)
    before = {k: v.clone() for k, v in one_go.model.state_dict().items()}
    first = one_go.run_hour(data_of(lake, 0, cfg, PLE_CFG))
    assert first.stats["samples"] > 0 and first.stats["steps_in_hour"] > 0
    changed = [k for k, v in one_go.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any("embedding" in k for k in changed) and any("tower" in k for k in changed)
    want = one_go.run_hour(data_of(lake, 1, cfg, PLE_CFG))

    again = StreamTrainer(PLE_CFG, cfg)
    again.run_hour(data_of(lake, 0, cfg, PLE_CFG))
    resumed = StreamTrainer(PLE_CFG, cfg)
    resumed.load_state(load_checkpoint(checkpoint_bytes(again.state())))
    got = resumed.run_hour(data_of(lake, 1, cfg, PLE_CFG))
    assert got.predictions.equals(want.predictions)
    assert checkpoint_bytes(resumed.state()) == checkpoint_bytes(one_go.state())


def test_the_seed_sets_the_librarys_initialisation():
    a, b, c = (DeepCtrPleRanker(PLE_CFG, seed=s).state_dict() for s in (1, 1, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
