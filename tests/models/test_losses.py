"""Stream losses (DESIGN §7.1) and InfoNCE, on constructed cases."""

import pytest
import torch
import torch.nn.functional as F

from ml.models.losses import info_nce, masked_bce, pu_slow_correction, stream_loss


def _grad(fn, z: torch.Tensor) -> torch.Tensor:
    z = z.clone().requires_grad_(True)
    fn(z).backward()
    return z.grad


# ---- BCE, PU correction, streams -----------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_negative_plus_slow_correction_is_a_positive(dtype):
    z = torch.linspace(-30, 30, 2001, dtype=dtype).view(-1, 1)
    m = torch.ones_like(z, dtype=torch.bool)
    zeros, ones = torch.zeros_like(z), torch.ones_like(z)
    fast_neg = _grad(lambda t: masked_bce(t, zeros, m), z)
    slow = _grad(lambda t: pu_slow_correction(t, m), z)
    positive = _grad(lambda t: masked_bce(t, ones, m), z)
    torch.testing.assert_close(fast_neg + slow, positive, rtol=0, atol=4 * torch.finfo(dtype).eps)
    # and the same through stream_loss, the way a trainer calls it
    both = _grad(lambda t: stream_loss("fast", t, zeros, None) + stream_loss("slow", t, None, m), z)
    torch.testing.assert_close(both, positive, rtol=0, atol=4 * torch.finfo(dtype).eps)


def test_pu_correction_is_minus_the_logit_sum():
    z = torch.tensor([[3.0, -2.0, 0.5], [1.0, 4.0, -6.0]], dtype=torch.float64)
    m = torch.tensor([[True, False, True], [False, True, True]])
    assert pu_slow_correction(z, m).item() == pytest.approx(-(3.0 + 0.5 + 4.0 - 6.0))
    # the paper's form, -Σ [log p - log(1 - p)], where it is still computable
    p = torch.sigmoid(z)
    assert pu_slow_correction(z, m).item() == pytest.approx(
        -(torch.log(p) - torch.log1p(-p))[m].sum().item()
    )
    # logit space stays finite where the probability form saturates
    big = torch.tensor([[100.0, -100.0]])
    assert pu_slow_correction(big, torch.ones_like(big, dtype=torch.bool)).item() == 0.0


def test_masked_bce_sums_labelled_entries_and_masks_gradients():
    torch.manual_seed(0)
    z = torch.randn(5, 6)
    y = (torch.rand(5, 6) < 0.4).float()
    m = torch.rand(5, 6) < 0.5
    want = F.binary_cross_entropy_with_logits(z[m], y[m], reduction="sum")
    torch.testing.assert_close(masked_bce(z, y, m), want)
    y_nan = y.clone()
    y_nan[~m] = float("nan")  # whatever a masked label holds, it must not leak
    z_inf = z.clone()
    z_inf[~m] = float("inf")
    g = _grad(lambda t: masked_bce(t, y_nan, m), z_inf)
    assert torch.equal(g[~m], torch.zeros_like(g[~m]))
    torch.testing.assert_close(g[m], torch.sigmoid(z[m]) - y[m])
    assert masked_bce(z, y, torch.zeros_like(m)).item() == 0.0


def test_streams_select_the_right_entries():
    torch.manual_seed(1)
    z = torch.randn(4, 6)
    y = (torch.rand(4, 6) < 0.5).float()
    m = torch.rand(4, 6) < 0.5
    everything = torch.ones_like(m)
    torch.testing.assert_close(stream_loss("moment", z, y, m), masked_bce(z, y, m))
    # fast labels every task: the mask is not read
    torch.testing.assert_close(stream_loss("fast", z, y, m), masked_bce(z, y, everything))
    torch.testing.assert_close(stream_loss("fast", z, y, None), masked_bce(z, y, everything))
    # slow: only the missing positives, labels not read
    torch.testing.assert_close(stream_loss("slow", z, None, m), -z[m].sum())
    g = _grad(lambda t: stream_loss("slow", t, y, m), z)
    assert torch.equal(g, torch.where(m, -1.0, 0.0))
    g = _grad(lambda t: stream_loss("moment", t, y, m), z)
    assert torch.equal(g[~m], torch.zeros_like(g[~m])) and (g[m] != 0).all()
    with pytest.raises(ValueError):
        stream_loss("weekly", z, y, m)


# ---- InfoNCE ------------------------------------------------------------------------------


def _orthogonal(b=16, d=32, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    return q[:b]


def test_info_nce_aligned_pairs_low_shuffled_high():
    x = _orthogonal()
    aligned = info_nce(x, x * 3.0, temperature=0.1)  # scale does not matter: L2-normalised
    shuffled = info_nce(x, x.roll(1, dims=0), temperature=0.1)
    assert aligned.item() < 1e-3
    assert shuffled.item() > 9.0  # the positive is 1/τ = 10 below the best negative
    # uniform similarities: exactly log B
    same = torch.ones(16, 8)
    assert info_nce(same, same, 0.1).item() == pytest.approx(torch.log(torch.tensor(16.0)).item())


def test_info_nce_temperature():
    x = _orthogonal()
    noisy = x + 0.3 * _orthogonal(seed=1)
    losses = [info_nce(x, noisy, t).item() for t in (0.05, 0.1, 0.5, 2.0)]
    assert losses == sorted(losses)  # a colder softmax is more confident on aligned pairs
    assert info_nce(x, x.roll(1, 0), 0.05) > info_nce(x, x.roll(1, 0), 0.5)


def test_info_nce_gradients_flow_and_pull_pairs_together():
    torch.manual_seed(0)
    a = torch.randn(8, 4, requires_grad=True)
    o = torch.randn(8, 4, requires_grad=True)
    opt = torch.optim.SGD([a, o], lr=0.5)
    first = info_nce(a, o, 0.2)
    first.backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0 and o.grad.abs().sum() > 0
    for _ in range(50):
        opt.zero_grad()
        info_nce(a, o, 0.2).backward()
        opt.step()
    assert info_nce(a, o, 0.2).item() < first.item()


def test_info_nce_valid_rows_and_pairings():
    torch.manual_seed(0)
    a, o = torch.randn(10, 6), torch.randn(3, 10, 6)
    valid = torch.rand(3, 10) < 0.7
    valid[2] = False  # a pairing with no valid row is left out of the average
    got = info_nce(a, o, 0.3, valid)
    per = [info_nce(a[valid[k]], o[k][valid[k]], 0.3) for k in range(2)]
    torch.testing.assert_close(got, torch.stack(per).mean())
    torch.testing.assert_close(info_nce(a, o[0], 0.3, valid[0]), per[0])
    none = torch.zeros(3, 10, dtype=torch.bool)
    a.requires_grad_(True)
    zero = info_nce(a, o, 0.3, none)
    zero.backward()
    assert zero.item() == 0.0 and torch.equal(a.grad, torch.zeros_like(a))


def test_info_nce_under_autocast_stays_float32_and_finite():
    torch.manual_seed(0)
    a = torch.randn(6, 4, requires_grad=True)
    o = torch.randn(2, 6, 4)
    valid = torch.zeros(2, 6, dtype=torch.bool)
    valid[0, :3] = True  # pairing 1 has no valid row at all
    with torch.autocast("cpu", dtype=torch.float16):
        loss = info_nce(a, o, 0.1, valid)
    assert loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(a.grad).all()
    torch.testing.assert_close(loss, info_nce(a[:3], o[0, :3], 0.1))


@pytest.mark.parametrize("block", [1 << 19, 64, 7])  # one block; several; rows not dividing B
@pytest.mark.parametrize("single", [False, True])
def test_blocked_info_nce_equals_its_autograd_twin(monkeypatch, block, single):
    import ml.models.losses as losses

    monkeypatch.setattr(losses, "BLOCK_ELEMENTS", block)
    g = torch.Generator().manual_seed(3)
    a = torch.randn(13, 5, generator=g, requires_grad=True)
    o = torch.randn(*(() if single else (3,)), 13, 5, generator=g, requires_grad=True)
    valid = torch.rand(o.shape[:-1], generator=g) < 0.7
    if not single:
        valid[1] = False  # a pairing with no valid row
    for tau in (0.5, 0.01):  # a cold one: logit gaps of 200, exact only with a true max
        got = losses.info_nce(a, o, tau, valid)
        want = losses.info_nce_reference(a, o, tau, valid)
        torch.testing.assert_close(got, want)
        grads = torch.autograd.grad(got, (a, o))
        ref = torch.autograd.grad(want, (a, o))
        for x, y in zip(grads, ref, strict=True):  # fp32 sums in another order, 1/τ = 100
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)
    assert torch.isfinite(got)


def test_blocked_info_nce_without_grad_and_scaled_backward():
    g = torch.Generator().manual_seed(4)
    a, o = torch.randn(9, 4, generator=g), torch.randn(2, 9, 4, generator=g)
    with torch.no_grad():
        plain = info_nce(a, o, 0.2)
    a.requires_grad_(True)
    loss = info_nce(a, o, 0.2)
    torch.testing.assert_close(loss.detach(), plain)
    (g1,) = torch.autograd.grad(loss, a)
    (g3,) = torch.autograd.grad(3.0 * info_nce(a, o, 0.2), a)
    torch.testing.assert_close(g3, 3.0 * g1)
