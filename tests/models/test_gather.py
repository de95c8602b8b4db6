"""The embedding gather and its compiled backward against torch's index_add_ (the twin)."""

import pytest
import torch

from ml.models.gather import lookup, scatter_add_rows


def _twin_grad(weight, idx, grad):
    return torch.zeros_like(weight).index_add_(0, idx.reshape(-1), grad.reshape(-1, grad.shape[-1]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_equals_a_sequential_index_add_bit_for_bit(dtype):
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(50, 7, dtype=dtype, generator=g, requires_grad=True)
    idx = torch.randint(0, 50, (6, 33), generator=g)  # many repeats, any shape
    idx[0, :5] = 3
    out = lookup(weight, idx)
    assert out.shape == (6, 33, 7)
    torch.testing.assert_close(out, weight.detach()[idx], rtol=0, atol=0)
    grad = torch.randn(out.shape, dtype=dtype, generator=g)
    out.backward(grad)
    assert torch.equal(weight.grad, _twin_grad(weight, idx, grad))


def test_non_kernel_dtypes_and_strided_gradients_take_the_twin_path():
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(20, 4, dtype=torch.bfloat16, generator=g, requires_grad=True)
    idx = torch.randint(0, 20, (30,), generator=g)
    grad = torch.randn(30, 4, generator=g).to(torch.bfloat16)
    lookup(weight, idx).backward(grad)
    assert torch.equal(weight.grad, _twin_grad(weight, idx, grad))
    strided = torch.randn(8, 30, generator=g).T  # (30, 8) non-contiguous
    direct = scatter_add_rows(strided, idx, 20)
    torch.testing.assert_close(direct, torch.zeros(20, 8).index_add_(0, idx, strided))


def test_gradients_flow_through_non_leaf_tables_and_not_without_grad():
    base = torch.randn(10, 3, requires_grad=True)
    table = base * 2.0  # a projected table, as the content projection is
    lookup(table, torch.tensor([1, 1, 4])).sum().backward()
    expect = torch.zeros(10, 3)
    expect[1], expect[4] = 4.0, 2.0
    assert torch.equal(base.grad, expect)
    with torch.no_grad():
        assert not lookup(base, torch.tensor([0, 2])).requires_grad


def test_out_of_range_rows_fail_before_the_unchecked_kernel():
    weight = torch.randn(5, 2, requires_grad=True)
    with pytest.raises(IndexError):
        lookup(weight, torch.tensor([0, 5]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_lookup_sum_equals_two_lookups_and_an_add_bit_for_bit(dtype):
    from ml.models.gather import lookup_sum

    g = torch.Generator().manual_seed(5)
    a = torch.randn(40, 6, generator=g).to(dtype).requires_grad_(True)
    b = torch.randn(9, 6, generator=g).to(dtype).requires_grad_(True)
    ia, ib = torch.randint(0, 40, (5, 31), generator=g), torch.randint(0, 9, (5, 31), generator=g)
    got = lookup_sum(a, ia, b, ib)
    want = lookup(a, ia) + lookup(b, ib)
    assert got.shape == (5, 31, 6) and torch.equal(got, want)
    grad = torch.randn(got.shape, generator=g).to(dtype)
    ga, gb = torch.autograd.grad(got, (a, b), grad)
    wa, wb = torch.autograd.grad(want, (a, b), grad)
    assert torch.equal(ga, wa) and torch.equal(gb, wb)
    with torch.no_grad():
        assert torch.equal(lookup_sum(a, ia, b, ib), want.detach())


def test_lookup_sum_checks_its_rows_and_shapes():
    from ml.models.gather import lookup_sum

    a, b = torch.randn(4, 2), torch.randn(3, 2)
    with pytest.raises(IndexError):
        lookup_sum(a, torch.tensor([0, 4]), b, torch.tensor([0, 1]))
    with pytest.raises(IndexError):
        lookup_sum(a, torch.tensor([0, 1]), b, torch.tensor([-1, 1]))
    with pytest.raises(ValueError, match="shapes"):
        lookup_sum(a, torch.tensor([0, 1]), b, torch.tensor([0]))
