"""The in-batch NLL with its hand-written backward against the autograd twin."""

import pytest
import torch

from ml.models.nce import SAFE_PROBABILITY, in_batch_nll, reference_in_batch_nll


def _case(k=3, b=9, d=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, b, d, dtype=dtype, generator=g).requires_grad_()
    o = torch.randn(k, b, d, dtype=dtype, generator=g).requires_grad_()
    return a, o, torch.zeros(k, 1, b, dtype=dtype), g


def _grads(fn, a, o, bias, weights):
    return torch.autograd.grad(fn(a, o, bias), (a, o), weights)


def test_values_and_gradients_equal_the_autograd_twin_with_masked_columns():
    a, o, bias, g = _case()
    bias[1, 0, 4] = torch.finfo(bias.dtype).min  # row 4 of pairing 1 is nobody's negative
    bias[2, 0, :] = torch.finfo(bias.dtype).min  # ... and pairing 2 has no valid row at all
    weights = torch.randn(3, 9, dtype=a.dtype, generator=g)
    weights[1, 4] = 0.0
    weights[2] = 0.0  # masked rows take no part in the loss, as info_nce masks them
    got, ref = in_batch_nll(a, o, bias), reference_in_batch_nll(a, o, bias)
    keep = weights != 0
    torch.testing.assert_close(got[keep], ref[keep])
    for x, y in zip(
        _grads(in_batch_nll, a, o, bias, weights),
        _grads(reference_in_batch_nll, a, o, bias, weights),
        strict=True,
    ):
        assert torch.isfinite(x).all()
        torch.testing.assert_close(x, y)


def test_gradcheck():
    a, o, bias, _ = _case(k=2, b=5, d=3, seed=1)
    assert torch.autograd.gradcheck(in_batch_nll, (a, o, bias))


def test_an_underflowing_target_is_recomputed_exactly():
    a, o, bias, _ = _case(k=1, b=6, d=2, seed=2, dtype=torch.float32)
    with torch.no_grad():
        a[0, 2] = torch.tensor([60.0, 0.0])
        o[0, 2] = torch.tensor([-1.0, 0.0])  # its own logit -60 ...
        o[0, 3] = torch.tensor([1.0, 0.0])  # ... another's +60: p_target ~ e^-120 underflows
    logits = a.detach() @ o.detach()[0].T
    assert torch.softmax(logits, -1)[0, 2, 2] < SAFE_PROBABILITY
    torch.testing.assert_close(
        in_batch_nll(a, o, bias)[0, 2], reference_in_batch_nll(a, o, bias)[0, 2]
    )
    assert 110 < float(in_batch_nll(a, o, bias)[0, 2].detach()) < 130


def test_an_anchor_shared_by_k_pairings_sums_their_gradients():
    _, o, bias, g = _case(seed=3)
    anchor = torch.randn(9, 4, dtype=o.dtype, generator=g).requires_grad_()

    def loss(fn):
        return fn(anchor.unsqueeze(0).expand(3, -1, -1), o, bias).sum()

    (ga,) = torch.autograd.grad(loss(in_batch_nll), anchor)
    (gr,) = torch.autograd.grad(loss(reference_in_batch_nll), anchor)
    torch.testing.assert_close(ga, gr)


@pytest.mark.parametrize("needs", [(True, False), (False, True)])
def test_only_the_requested_gradient_is_computed(needs):
    a, o, bias, _ = _case(seed=4)
    a.requires_grad_(needs[0])
    o.requires_grad_(needs[1])
    target = a if needs[0] else o
    (got,) = torch.autograd.grad(in_batch_nll(a, o, bias).sum(), target)
    (ref,) = torch.autograd.grad(reference_in_batch_nll(a, o, bias).sum(), target)
    torch.testing.assert_close(got, ref)
