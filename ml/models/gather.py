"""Row gathers whose backward is a fast row scatter-add: every embedding lookup of the model.

``lookup(weight, idx)`` is ``weight[idx]``. Its gradient is the scatter-add of the output
gradient's rows into a zero table, once per gathered position. torch's CPU ``index_add_``
runs that through a strided iterator — in the ranking model the GSU positions (~180,000
per batch of 1024) made those scatters the largest cost of a training step after the
expert GEMMs. ``add_rows`` is the same sum as one plain loop over contiguous rows, ~5x
faster (``bench/train_kernels.py``): positions are visited in order, so the sums, and the bytes,
are those of a sequential ``index_add_``. On other devices, other dtypes or
non-contiguous gradients the backward is torch's ``index_add_`` (the plain twin the tests
compare against).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import torch

from ml import kernel_cache  # noqa: F401  (numba's cache: keyed by all kernel sources)

KERNEL_DTYPES = (torch.float32, torch.float64)


@nb.njit(nogil=True, cache=True, boundscheck=False)
def add_rows(out: np.ndarray, idx: np.ndarray, src: np.ndarray) -> None:
    """out[idx[i]] += src[i] for every i, in order. out (N, D), idx (n,) int64, src (n, D)."""
    n, d = src.shape
    for i in range(n):
        r = idx[i]
        for j in range(d):
            out[r, j] += src[i, j]


@nb.njit(nogil=True, cache=True, boundscheck=False)
def sum_rows(out: np.ndarray, a: np.ndarray, ia: np.ndarray, b: np.ndarray, ib: np.ndarray):
    """out[i] = a[ia[i]] + b[ib[i]] for every i: two gathers and their sum in one pass."""
    n, d = out.shape
    for i in range(n):
        ra, rb = ia[i], ib[i]
        for j in range(d):
            out[i, j] = a[ra, j] + b[rb, j]


def scatter_add_rows(grad: torch.Tensor, idx: torch.Tensor, num_rows: int) -> torch.Tensor:
    """(num_rows, D) zeros with grad's rows (n, D) added at idx (n,): the gather's backward."""
    out = grad.new_zeros(num_rows, grad.shape[-1])
    if grad.device.type == "cpu" and grad.dtype in KERNEL_DTYPES and grad.is_contiguous():
        # An out-of-range index would write out of bounds with boundscheck off: the
        # forward's index_select already rejected any, so idx is known to be in range.
        add_rows(out.numpy(), idx.numpy(), grad.detach().numpy())
        return out
    return out.index_add_(0, idx, grad)


class _Lookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(idx)
        ctx.num_rows = weight.shape[0]
        return weight.index_select(0, idx)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (idx,) = ctx.saved_tensors
        return scatter_add_rows(grad.contiguous(), idx, ctx.num_rows), None


class _LookupSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, ia, b, ib):
        ctx.save_for_backward(ia, ib)
        ctx.rows = (a.shape[0], b.shape[0])
        return _summed_rows(a, ia, b, ib)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        ia, ib = ctx.saved_tensors
        grad = grad.contiguous()
        ga = scatter_add_rows(grad, ia, ctx.rows[0]) if ctx.needs_input_grad[0] else None
        gb = scatter_add_rows(grad, ib, ctx.rows[1]) if ctx.needs_input_grad[2] else None
        return ga, None, gb, None


def lookup_sum(
    a: torch.Tensor, ia: torch.Tensor, b: torch.Tensor, ib: torch.Tensor
) -> torch.Tensor:
    """a[ia] + b[ib] for int64 ia, ib of one shape S -> (*S, D), in one pass.

    The GSU positions' item part and (gap, action) part: as two lookups and an add that
    is two (256,000, 16) temporaries a step and a third tensor for the sum; here the sum is
    written once. CPU float32/64 tables take the compiled pass (rows checked in range
    first: it runs without bounds checks); anything else is the plain twin
    ``lookup(a, ia) + lookup(b, ib)``, which gives the same bytes.
    """
    if ia.shape != ib.shape:
        raise ValueError(f"index shapes differ: {tuple(ia.shape)} and {tuple(ib.shape)}")
    kernel = (
        a.device.type == "cpu" and a.dtype == b.dtype and a.dtype in KERNEL_DTYPES
        and a.is_contiguous() and b.is_contiguous() and a.shape[1] == b.shape[1]
    )  # fmt: skip
    if not kernel:
        return lookup(a, ia) + lookup(b, ib)
    fa, fb = (
        ia.reshape(-1).to(torch.int64).contiguous(),
        ib.reshape(-1).to(torch.int64).contiguous(),
    )
    for rows, idx in ((a.shape[0], fa), (b.shape[0], fb)):
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= rows):
            raise IndexError(f"row index out of range for a table of {rows} rows")
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        out = _LookupSum.apply(a, fa, b, fb)
    else:
        out = _summed_rows(a, fa, b, fb)
    return out.view(*ia.shape, a.shape[1])


def _summed_rows(a, ia, b, ib) -> torch.Tensor:
    out = a.new_empty(len(ia), a.shape[1])
    sum_rows(out.numpy(), a.detach().numpy(), ia.numpy(), b.detach().numpy(), ib.numpy())
    return out


def lookup(weight: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """weight (N, D)[idx] for int64 idx of any shape S -> (*S, D)."""
    flat = idx.reshape(-1)
    if not weight.requires_grad or not torch.is_grad_enabled():
        rows = weight.index_select(0, flat)
    else:
        rows = _Lookup.apply(weight, flat.to(torch.int64).contiguous())
    return rows.view(*idx.shape, weight.shape[-1])
