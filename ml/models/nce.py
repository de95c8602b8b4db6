"""The in-batch cross entropy at the heart of InfoNCE, with a hand-written backward.

For K pairings of B queries ``a`` against B keys ``o`` (row b's positive is key b), the
logits are ``a @ oᵀ + bias`` (K, B, B) and row b's loss is ``-log softmax(logits)[b, b]``.
This is the largest elementwise work of a ranking step (4 × 1024 × 1024 logits per batch),
and it is memory-bound: what counts is how many times the (K, B, B) block is read and
written. Autograd through baddbmm + log_softmax + diagonal makes ~9 passes (the logits,
the log-probabilities, a zero gradient block for the diagonal, log_softmax's backward,
then both matmul backwards). Here the forward is one baddbmm and one fused softmax, and
the backward never forms d(logits) = g ⊙ (P - I): with row weights g,

    dA = g ⊙ (P @ o) - g ⊙ o        dO = Pᵀ @ (g ⊙ a) - g ⊙ a

so the saved softmax P is only read, twice, by the two matmuls (5 passes in all).
``bias`` is a constant mask (no gradient). The plain twin is the autograd expression
``reference_in_batch_nll``, which the tests compare against.
"""

from __future__ import annotations

import torch

# Below this a float32 softmax entry has lost precision (denormals start near 1e-38): a
# target that small has its loss recomputed exactly, by log-sum-exp over its row alone.
SAFE_PROBABILITY = 1e-30


class _InBatchNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, o: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        logits = torch.baddbmm(bias, a, o.transpose(1, 2))  # (K, B, B)
        p = torch.softmax(logits, dim=-1)
        ctx.save_for_backward(a, o, p)
        p_target = p.diagonal(dim1=1, dim2=2)  # (K, B)
        nll = -torch.log(p_target)
        tiny = p_target < SAFE_PROBABILITY  # also every masked target (bias = finfo.min)
        if tiny.any():
            k, b = tiny.nonzero(as_tuple=True)
            nll[k, b] = torch.logsumexp(logits[k, b], dim=-1) - logits[k, b, b]
        return nll

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        a, o, p = ctx.saved_tensors
        g = grad.unsqueeze(-1)  # (K, B, 1)
        da = torch.bmm(p, o).sub_(o).mul_(g) if ctx.needs_input_grad[0] else None
        ga = a * g
        do = torch.bmm(p.transpose(1, 2), ga).sub_(ga) if ctx.needs_input_grad[1] else None
        return da, do, None


def in_batch_nll(a: torch.Tensor, o: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """-log softmax(a @ oᵀ + bias)[k, b, b]: a, o (K, B, D), bias (K, 1 | B, B) -> (K, B)."""
    return _InBatchNLL.apply(a, o, bias)


def reference_in_batch_nll(a: torch.Tensor, o: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``in_batch_nll`` through autograd alone (the plain twin)."""
    logits = torch.baddbmm(bias, a, o.transpose(1, 2))
    return -torch.log_softmax(logits, dim=-1).diagonal(dim1=1, dim2=2)
