"""MomentCrossModel: shapes, padding, ablation switches, determinism, ranking score."""

import dataclasses

import pytest
import torch

from ml.models.inputs import random_inputs
from ml.models.losses import stream_loss
from ml.models.ranking import MomentCrossConfig, MomentCrossModel, ranking_score
from ml.schema import GSUS, TASKS

B, L, N_CONTENT = 16, 10, 20
SMALL = dict(
    user_rows=1 << 10,
    room_rows=1 << 8,
    author_rows=1 << 8,
    item_rows=1 << 10,
    seq_author_rows=1 << 9,
    d=8,
    seq_len=L,
    expert_dims=(16, 8),
    tower_dims=(8,),
)


def make(seed=0, **kw) -> MomentCrossModel:
    torch.manual_seed(seed)
    return MomentCrossModel(MomentCrossConfig(**{**SMALL, **kw})).eval()


def inputs(seed=1, batch=B):
    return random_inputs(batch, seq_len=L, n_content=N_CONTENT, seed=seed)


def scramble_padding(x, seed=7):
    """Arbitrary garbage in every padded GSU position (ids, rows, codes)."""
    g = torch.Generator().manual_seed(seed)
    n_rows = x.content_table.shape[0]
    pad = ~x.seq_mask
    out = {}
    for name, hi in [
        ("seq_item", 1 << 40),
        ("seq_author", 1 << 40),
        ("seq_category", 50),
        ("seq_row", n_rows),
        ("seq_gap", 24),
        ("seq_action", 32),
    ]:
        t = getattr(x, name)
        out[name] = torch.where(pad, torch.randint(0, hi, t.shape, generator=g), t)
    return dataclasses.replace(x, **out)


@pytest.mark.parametrize("backbone", ["ple", "mmoe"])
def test_shapes_and_finite_training_outputs(backbone):
    m = make(backbone=backbone).train()
    x = inputs()
    logits, align = m.forward_train(x)
    assert logits.shape == (B, len(TASKS)) and align.shape == ()
    assert torch.isfinite(logits).all() and torch.isfinite(align) and align.item() > 0
    assert m.score(x).shape == (B,)
    y = (torch.rand(B, len(TASKS)) < 0.3).float()
    (stream_loss("fast", logits, y, None) + align).backward()
    for name in ("esu.w_q", "esu.w_k", "seq_item.weight", "user.weight", "content_proj.weight"):
        grad = dict(m.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    tower_w = m.towers.weights[-1].grad
    assert all(tower_w[t].abs().sum() > 0 for t in range(len(TASKS)))


@pytest.mark.parametrize("n_content", [N_CONTENT, 5000])  # both content-projection paths
def test_padded_gsu_items_never_change_any_output(n_content):
    m = make().train()  # train mode: dropout is 0, and the alignment loss runs too
    x = random_inputs(B, seq_len=L, n_content=n_content, seed=1)
    y = scramble_padding(x)
    assert not torch.equal(x.seq_item, y.seq_item)
    lx, ax = m.forward_train(x)
    ly, ay = m.forward_train(y)
    assert torch.equal(lx, ly) and torch.equal(ax, ay)


def test_fully_padded_sequences_give_finite_outputs():
    m = make().train()
    x = inputs()
    empty = dataclasses.replace(x, seq_mask=torch.zeros_like(x.seq_mask))
    logits, align = m.forward_train(empty)
    assert torch.isfinite(logits).all() and align.item() == 0.0
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    # one GSU empty for everybody, the anchor: no valid pairing at all
    mask = x.seq_mask.clone()
    mask[:, GSUS.index("long_view")] = False
    assert m.forward_train(dataclasses.replace(x, seq_mask=mask))[1].item() == 0.0


def test_content_projection_paths_agree():
    m = make()
    small = inputs(batch=2)
    big_table = torch.cat([small.content_table, torch.randn(4000, small.content_table.shape[1])])
    big = dataclasses.replace(small, content_table=big_table)  # same rows, other path
    torch.testing.assert_close(m(small), m(big), rtol=1e-5, atol=1e-6)


def test_real_sequence_items_do_change_outputs():
    m = make()
    x = inputs()
    moved = dataclasses.replace(x, seq_item=torch.where(x.seq_mask, x.seq_item + 1, x.seq_item))
    assert not torch.allclose(m(x), m(moved))


def test_use_cross_false_ignores_sequences():
    m = make(use_cross=False)
    assert not any(n.startswith(("esu", "seq_")) for n, _ in m.named_parameters())
    x, other = inputs(seed=1), inputs(seed=2)
    swapped = dataclasses.replace(
        x, **{f: getattr(other, f) for f in x.__dataclass_fields__ if f.startswith("seq_")}
    )
    logits, align = m.forward_train(x)
    assert torch.equal(logits, m(swapped)) and align.item() == 0.0


def test_use_realtime_false_ignores_room_feats():
    x = inputs()
    y = dataclasses.replace(x, room_feats=x.room_feats * 5 + 1)
    off = make(use_realtime=False)
    assert torch.equal(off(x), off(y))
    assert off(dataclasses.replace(x, room_feats=torch.zeros(B, 3))).shape == (B, len(TASKS))
    on = make()
    assert not torch.allclose(on(x), on(y))


def test_user_feats_and_context_are_read():
    m = make()
    x = inputs()
    assert not torch.allclose(m(x), m(dataclasses.replace(x, user_feats=x.user_feats + 1)))
    ctx = x.context.clone()
    ctx[:, 0] = (ctx[:, 0] + 1) % 24
    assert not torch.allclose(m(x), m(dataclasses.replace(x, context=ctx)))


def test_samples_do_not_see_each_other():
    m = make()
    x = inputs()
    idx = torch.tensor([3, 0, 11])
    torch.testing.assert_close(m(x)[idx], m(x.select(idx)), rtol=1e-6, atol=1e-6)


def test_determinism_by_seed():
    a, b, c = make(seed=0), make(seed=0), make(seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    x = inputs()
    assert torch.equal(a(x), b(x))
    assert not torch.allclose(a(x), c(x))


def test_ranking_score_matches_the_product_formula():
    torch.manual_seed(0)
    p = torch.rand(32, 6, dtype=torch.float64)
    alphas = (1.0, 0.5, 2.0, 0.0, 1.5, 0.25)
    direct = torch.ones(32, dtype=torch.float64)
    for k, a in enumerate(alphas):
        direct = direct * (1 + p[:, k]) ** a
    torch.testing.assert_close(ranking_score(p, alphas), direct)
    torch.testing.assert_close(ranking_score(torch.zeros(2, 6), alphas), torch.ones(2))
    m = make(alphas=alphas)
    x = inputs()
    want = ranking_score(torch.sigmoid(m(x)), alphas)
    torch.testing.assert_close(m.score(x), want)


def test_config_validation_and_priors():
    with pytest.raises(ValueError):
        MomentCrossConfig(alphas=(1.0,))
    with pytest.raises(ValueError):
        MomentCrossConfig(backbone="transformer")
    with pytest.raises(ValueError):
        MomentCrossConfig(mixed_gsu="nope")
    rates = (0.1, 0.05, 0.02, 0.01, 0.005, 0.001)
    m = make(prior_rates=rates)
    torch.testing.assert_close(
        torch.sigmoid(m.towers.biases[-1].detach().squeeze(1)), torch.tensor(rates)
    )
    with pytest.raises(ValueError, match="user_feats"):
        make()(dataclasses.replace(inputs(), user_feats=torch.zeros(B, 3)))


def test_a_few_steps_fit_a_fixed_batch():
    m = make().train()
    x = inputs()
    y = (torch.rand(B, len(TASKS), generator=torch.Generator().manual_seed(0)) < 0.3).float()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        logits, align = m.forward_train(x)
        loss = stream_loss("fast", logits, y, None) / B + 0.1 * align
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_mixed_precision_forward_backward_is_finite():
    m = make().train()
    x = inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, align = m.forward_train(x)
    assert torch.isfinite(logits.float()).all() and torch.isfinite(align)
    (logits.float().sum() + align).backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def outputs_and_grads(m, x):
    """(logits, align loss, gradient of their sum per parameter) of one forward_train."""
    m.zero_grad()
    logits, align = m.forward_train(x)
    (logits.sum() + align).backward()
    return logits, align, {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("use_cross", [True, False])
def test_ids_hashed_once_by_the_loader_give_the_same_outputs_and_gradients(use_cross):
    m = make(use_cross=use_cross).train()
    x = inputs()
    h = m.hash_ids(x)
    assert h.hashed and not x.hashed and m.hash_ids(h) is h
    assert (h.user_id < SMALL["user_rows"]).all() and not torch.equal(h.user_id, x.user_id)
    raw_logits, raw_align, raw_grads = outputs_and_grads(m, x)
    logits, align, grads = outputs_and_grads(m, h)
    assert torch.equal(logits, raw_logits) and torch.equal(align, raw_align)
    assert grads.keys() == raw_grads.keys()
    assert all(torch.equal(grads[k], raw_grads[k]) for k in grads)
    # a scrambled padding still changes nothing once hashed
    assert torch.equal(m.forward_train(m.hash_ids(scramble_padding(x)))[0], raw_logits)


def test_items_computed_once_per_distinct_item_equal_every_position_computed(monkeypatch):
    """The per-distinct-item shortcut gives bit-identical outputs; the gradients agree up to
    the order their repeats are summed in."""
    import ml.models.ranking as R

    m = make().train()
    x = inputs()
    # many repeats: every real position holds one of three items
    x = dataclasses.replace(x, seq_item=x.seq_item % 3 + 1)
    logits, align, grads = outputs_and_grads(m, x)
    first, inverse = R._distinct_items(
        torch.tensor([True, True, True, True, False, False]),
        (torch.tensor([5, 7, 5, 5, 5, 0]), 10), (torch.tensor([1, 1, 1, 2, 1, 0]), 3),
    )  # fmt: skip
    # padding (whatever its ids) is one combination of its own, sorted first
    assert len(first) == 4 and inverse.tolist() == [1, 3, 1, 2, 0, 0]
    monkeypatch.setattr(R, "_distinct_items", lambda *f: (None, None))
    plain_logits, plain_align, plain_grads = outputs_and_grads(m, x)
    assert torch.equal(logits, plain_logits) and torch.equal(align, plain_align)
    assert all(torch.allclose(plain_grads[k], grads[k], atol=1e-6) for k in grads)
