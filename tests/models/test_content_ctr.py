"""ContentCTR: shapes, causality, the fusion variants and ablations, the losses."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ml.models.content_ctr import FUSIONS, ContentCTR, ContentCTRConfig
from ml.models.content_losses import (
    ContentLossConfig,
    align_loss,
    content_ctr_loss,
    pair_loss,
    point_loss,
    temporal_shuffles,
)

SMALL = ContentCTRConfig(visual_dim=12, text_dim=8, streamer_rows=64, d=16, n_heads=2,
                         fusion_layers=2, decoder_layers=2, window=20)  # fmt: skip
B, W = 3, 20


def batch(seed=0, b=B, w=W):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, w, SMALL.visual_dim, generator=g),
        torch.randn(b, w, SMALL.text_dim, generator=g),
        torch.randint(1, SMALL.streamer_rows, (b,), generator=g),
    )


def make(**kw) -> ContentCTR:
    torch.manual_seed(0)
    return ContentCTR(dataclasses.replace(SMALL, **kw)).eval()


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_variant_gives_one_logit_per_segment(fusion):
    m = make(fusion=fusion)
    logits, s_p, s_a = m.forward_train(*batch())
    assert logits.shape == (B, W) and s_p.shape == s_a.shape == (B, W, SMALL.d)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if n.startswith("fusion"))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_a_segment_never_sees_a_later_one(fusion):
    m = make(fusion=fusion)
    visual, text, streamer = batch()
    base = m(visual, text, streamer)
    for t in (0, 7, W - 2):
        v2, x2 = visual.clone(), text.clone()
        v2[:, t + 1 :] = torch.randn_like(v2[:, t + 1 :]) * 10
        x2[:, t + 1 :] = torch.randn_like(x2[:, t + 1 :]) * 10
        out = m(v2, x2, streamer)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])
    v3 = visual.clone()
    v3[:, 5] += 5.0  # the segment itself and the later ones do move
    out = m(v3, text, streamer)
    assert not torch.allclose(out[:, 5], base[:, 5]) and torch.equal(out[:, :5], base[:, :5])


def test_ablations_drop_what_they_name():
    visual, text, streamer = batch()
    no_visual = make(use_visual=False)
    assert no_visual.proj_visual is None
    logits, s_p, _ = no_visual.forward_train(torch.zeros_like(visual), text, streamer)
    assert s_p is None and torch.equal(logits, no_visual(visual * 7, text, streamer))
    no_text = make(use_text=False)
    assert torch.equal(no_text(visual, text, streamer), no_text(visual, text * 3, streamer))
    no_id = make(use_streamer=False)
    assert torch.equal(no_id(visual, text, streamer), no_id(visual, text, streamer + 1))
    with_id = make()
    assert not torch.allclose(with_id(visual, text, streamer), with_id(visual, text, streamer + 1))
    with pytest.raises(ValueError, match="at least one"):
        make(use_visual=False, use_text=False)
    with pytest.raises(ValueError, match="fusion"):
        make(fusion="nope")


def test_same_seed_same_model_and_outputs_and_shorter_windows():
    a, b = make(), make()
    x = batch()
    assert torch.equal(a(*x), b(*x))
    short = a(*batch(w=7))
    assert short.shape == (B, 7)
    with pytest.raises(ValueError, match="segments per window"):
        a(*batch(w=W + 1))


def test_streamer_rows_are_hashed_into_the_table_and_prior_sets_the_bias():
    m = make(prior_ctr=0.1)
    rows = m.streamer_rows(torch.tensor([0, 12345678901, -5]))
    assert rows[0] == 0 and ((rows >= 0) & (rows < SMALL.streamer_rows)).all()
    assert m.out.bias.item() == pytest.approx(torch.logit(torch.tensor(0.1)).item(), abs=1e-6)


# ---- losses -------------------------------------------------------------------------------


def test_point_loss_is_masked_mean_bce_with_soft_targets():
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(4, 6, generator=g), torch.rand(4, 6, generator=g)
    m = torch.rand(4, 6, generator=g) < 0.7
    y_nan = torch.where(m, y, torch.nan)  # unmasked targets are never read
    want = F.binary_cross_entropy_with_logits(z[m], y[m])
    torch.testing.assert_close(point_loss(z, y_nan, m), want)
    assert point_loss(z, y, torch.zeros_like(m)).item() == 0.0


def _two(s_i, s_j, y_i, y_j):
    z = torch.logit(torch.tensor([[s_i, s_j]]))
    return z, torch.tensor([[y_i, y_j]]), torch.ones(1, 2, dtype=torch.bool)


def test_pair_loss_variants_select_the_papers_pairs():
    term = lambda ds: F.softplus(torch.tensor(-10.0 * ds)).item()  # noqa: E731
    # wrong order: s_i < s_j although y_i > y_j -> in 0, 1 and 2, not in 3
    z, y, m = _two(0.2, 0.4, 0.5, 0.1)
    got = [pair_loss(z, y, m, v).item() for v in range(4)]
    assert got == pytest.approx([term(-0.2), term(-0.2), term(-0.2), 0.0], rel=1e-5)
    # right order, gap below the target's: in 0, 1 and 3
    z, y, m = _two(0.3, 0.2, 0.5, 0.1)
    got = [pair_loss(z, y, m, v).item() for v in range(4)]
    assert got == pytest.approx([term(0.1), term(0.1), 0.0, term(0.1)], rel=1e-5)
    # over-separated: s_i - s_j beyond y_i - y_j -> outside the boundary (only 0 keeps it)
    z, y, m = _two(0.9, 0.1, 0.5, 0.4)
    got = [pair_loss(z, y, m, v).item() for v in range(4)]
    assert got == pytest.approx([term(0.8), 0.0, 0.0, 0.0], rel=1e-5)
    # no pair with y_i > y_j: nothing to rank
    z, y, m = _two(0.3, 0.2, 0.4, 0.4)
    assert pair_loss(z, y, m, 0).item() == 0.0


def test_boundary_aware_pairs_are_the_wrong_plus_the_under_separated():
    g = torch.Generator().manual_seed(1)
    z, y = torch.randn(5, 20, generator=g), torch.rand(5, 20, generator=g)
    m = torch.rand(5, 20, generator=g) < 0.8
    torch.testing.assert_close(pair_loss(z, y, m, 1), pair_loss(z, y, m, 2) + pair_loss(z, y, m, 3))
    assert pair_loss(z, y, m, 0) > pair_loss(z, y, m, 1)
    # a masked-out segment is in no pair
    y2 = torch.where(m, y, torch.full_like(y, 5.0))
    torch.testing.assert_close(pair_loss(z, y2, m, 0), pair_loss(z, y, m, 0))
    with pytest.raises(ValueError):
        pair_loss(z, y, m, 4)


def test_align_loss_prefers_aligned_sequences_and_trains_both_encoders():
    g = torch.Generator().manual_seed(2)
    visual = torch.randn(6, 20, 16, generator=g, requires_grad=True)
    shuffles = temporal_shuffles(6, 20, 8, torch.Generator().manual_seed(3))
    assert shuffles.shape == (8, 6, 20)
    assert torch.equal(shuffles.sort(-1).values, torch.arange(20).expand(8, 6, 20))
    aligned = align_loss(visual.detach().clone().requires_grad_(True), visual, shuffles)
    unrelated = align_loss(torch.randn(6, 20, 16, generator=g), visual.detach(), shuffles)
    assert aligned < unrelated
    assert aligned.item() < torch.log(torch.tensor(9.0)).item()  # below chance: 1 of 9
    text = torch.randn(6, 20, 16, generator=g, requires_grad=True)
    align_loss(text, visual, shuffles).backward()
    assert text.grad.abs().sum() > 0 and visual.grad.abs().sum() > 0


def test_total_loss_weights_and_switches():
    m = make().train()
    visual, text, streamer = batch()
    logits, s_p, s_a = m.forward_train(visual, text, streamer)
    y = torch.rand(B, W, generator=torch.Generator().manual_seed(4))
    mask = torch.ones(B, W, dtype=torch.bool)
    cfg = ContentLossConfig()
    total, parts = content_ctr_loss(
        cfg, logits, y, mask, s_p, s_a, torch.Generator().manual_seed(5)
    )
    want = 0.65 * parts["point"] + 0.20 * parts["pair"] + 0.15 * parts["align"]
    torch.testing.assert_close(total, want)
    assert parts["align"] > 0 and parts["pair"] > 0
    point_only = ContentLossConfig(pair_variant=None, use_align=False)
    total, parts = content_ctr_loss(point_only, logits, y, mask, s_p, s_a, torch.Generator())
    torch.testing.assert_close(total, 0.65 * point_loss(logits, y, mask))
    _, parts = content_ctr_loss(cfg, logits, y, mask, None, s_a, torch.Generator())
    assert parts["align"].item() == 0.0  # no visual tokens: nothing to align
    with pytest.raises(ValueError):
        ContentLossConfig(pair_variant=7)
