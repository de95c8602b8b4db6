"""Soft-DTW over anti-diagonals: exact DTW as γ -> 0, tslearn's soft-DTW, gradcheck."""

import pytest
import torch

from ml.models.soft_dtw import cosine_cost, soft_dtw, soft_dtw_reference


def dtw_cell_by_cell(cost: torch.Tensor) -> torch.Tensor:
    """Exact DTW by the textbook recursion over cells: (B, N, M) -> (B,)."""
    b, n, m = cost.shape
    r = torch.full((b, n + 1, m + 1), float("inf"), dtype=cost.dtype)
    r[:, 0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best = torch.minimum(torch.minimum(r[:, i - 1, j - 1], r[:, i - 1, j]), r[:, i, j - 1])
            r[:, i, j] = cost[:, i - 1, j - 1] + best
    return r[:, n, m]


def _cost(b, n, m, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x, y = (
        torch.randn(b, n, 6, generator=g, dtype=dtype),
        torch.randn(b, m, 6, generator=g, dtype=dtype),
    )
    return x, y, cosine_cost(x, y)


@pytest.mark.parametrize(("n", "m"), [(1, 1), (1, 5), (5, 1), (7, 7), (20, 20), (6, 11)])
def test_soft_dtw_tends_to_exact_dtw_as_gamma_goes_to_zero(n, m):
    _, _, cost = _cost(3, n, m)
    exact = dtw_cell_by_cell(cost)
    for gamma in (1e-2, 1e-3, 1e-4):
        got = soft_dtw(cost, gamma)
        # softmin is below min by at most γ log 3 per step of the path
        assert torch.all(got <= exact + 1e-9)
        assert torch.all(exact - got <= gamma * torch.log(torch.tensor(3.0)) * (n + m))
    torch.testing.assert_close(soft_dtw(cost, 1e-5), exact, atol=1e-3, rtol=0)


@pytest.mark.parametrize("gamma", [0.1, 1.0])
@pytest.mark.parametrize(("n", "m"), [(20, 20), (9, 14)])
def test_soft_dtw_equals_tslearn_values_and_gradients(gamma, n, m):
    from tslearn.metrics import SoftDTWLossPyTorch

    x, y, _ = _cost(4, n, m, seed=1, dtype=torch.float32)
    x.requires_grad_(True)
    theirs = SoftDTWLossPyTorch(gamma=gamma, dist_func=cosine_cost)(x, y)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), x)
    ours = soft_dtw(cosine_cost(x, y), gamma)
    (g_ours,) = torch.autograd.grad(ours.sum(), x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-4, atol=1e-5)


def test_soft_dtw_gradcheck():
    _, _, cost = _cost(2, 5, 4, seed=2)
    cost.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: soft_dtw(c, 0.5), (cost,))


def test_aligned_sequences_are_closer_than_shuffled_ones():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 20, 16, generator=g)
    lagged = torch.roll(x, 2, dims=1) + 0.1 * torch.randn(8, 20, 16, generator=g)
    shuffled = lagged[:, torch.randperm(20, generator=g)]
    near = soft_dtw(cosine_cost(x, lagged), 0.1)
    far = soft_dtw(cosine_cost(x, shuffled), 0.1)
    assert torch.all(near < far)


def test_soft_dtw_rejects_nonpositive_gamma():
    with pytest.raises(ValueError, match="gamma"):
        soft_dtw(torch.zeros(1, 2, 2), 0.0)


@pytest.mark.parametrize(("n", "m"), [(1, 1), (1, 4), (4, 1), (6, 9), (20, 20)])
@pytest.mark.parametrize("gamma", [0.01, 0.3, 2.0])
def test_written_out_backward_equals_autograd_through_the_recursion(n, m, gamma):
    _, _, cost = _cost(3, n, m, seed=n * 31 + m)
    cost.requires_grad_(True)
    ours = soft_dtw(cost, gamma)
    twin = soft_dtw_reference(cost, gamma)
    torch.testing.assert_close(ours, twin)
    w = torch.tensor([1.0, -2.0, 0.5], dtype=cost.dtype)
    (g_ours,) = torch.autograd.grad((ours * w).sum(), cost)
    (g_twin,) = torch.autograd.grad((twin * w).sum(), cost)
    torch.testing.assert_close(g_ours, g_twin)
