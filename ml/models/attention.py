"""The core of target attention: one query per sequence pools its items, and the masked
mean of the same items comes out of the same matmul.

    qk (N, H, D), keys (N, L, D), mask bool (N, L) -> pooled (N, H, D), mean (N, D)

pooled[n, h] = Σ_l softmax_l(qk[n, h] · keys[n, l] over real l) keys[n, l]; mean[n] =
Σ_l keys[n, l] / (real items of n). ``attend_and_mean`` is an autograd Function whose
backward is written out: autograd's own backward of the two bmms computes the keys'
gradient in two matmuls whose inner dimension is H (2): a (D, H) @ (H, L) per
sequence, 5 x 1024 of them per batch, plus a (B, G, L, D) add of the two results, where
this backward stacks the score gradient and the weights into one (L, 2H+1) @ (2H+1, D)
matmul that writes the keys' gradient once, in its own layout. The mean is the (H+1)-th
row of the weight matrix (mask / count), so the Cross alignment's means cost one more
row of a matmul that runs anyway instead of a pass over the (B, G, L, D) items and the
gradient that pass sends back. ``attend_and_mean_reference`` is the plain twin through
autograd.

A padded item gets weight exactly 0 (its score is finfo.min, its exp underflows), so
neither it nor its gradient reaches anything. A sequence with no real item pools with
uniform weights (finite; callers zero it) and has mean 0.
"""

from __future__ import annotations

import torch


def _weights(qk: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, H+1, L): the H heads' softmax weights, then mask / count (the mean's)."""
    scores = torch.bmm(qk, keys.transpose(1, 2))  # (N, H, L)
    m = mask.unsqueeze(1)
    scores = scores.masked_fill(~m, torch.finfo(scores.dtype).min)
    # in at least float32: a bf16 softmax over 50 items loses the small weights
    wide = torch.promote_types(scores.dtype, torch.float32)
    attn = torch.softmax(scores.to(wide), dim=-1).to(keys.dtype)
    share = m.to(keys.dtype) / m.sum(-1, keepdim=True).clamp(min=1).to(keys.dtype)
    return torch.cat([attn, share], dim=1)


class _AttendAndMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qk, keys, mask):
        w = _weights(qk, keys, mask)
        out = torch.bmm(w, keys)  # (N, H+1, D)
        ctx.save_for_backward(qk, keys, w, mask)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        qk, keys, w, mask = ctx.saved_tensors
        h = qk.shape[1]
        grad_out = grad_out.to(keys.dtype)
        attn, grad_pooled = w[:, :h], grad_out[:, :h]
        grad_attn = torch.bmm(grad_pooled, keys.transpose(1, 2))  # (N, H, L)
        grad_scores = attn * (grad_attn - (attn * grad_attn).sum(-1, keepdim=True))
        # a padded item's score is a constant (masked_fill): no gradient, even where a
        # sequence with no real item gave it a uniform weight
        grad_scores = grad_scores.masked_fill(~mask.unsqueeze(1), 0.0)
        grad_qk = torch.bmm(grad_scores, keys)
        # keys feed the scores (through qk), the pooling and the mean: one matmul for all
        coef = torch.cat([grad_scores, w], dim=1)  # (N, 2H+1, L)
        vec = torch.cat([qk, grad_out], dim=1)  # (N, 2H+1, D)
        grad_keys = torch.bmm(coef.transpose(1, 2), vec)  # (N, L, D)
        return grad_qk, grad_keys, None


def attend_and_mean(
    qk: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (pooled (N, H, D), mean (N, D)). Under autocast both run in its dtype."""
    if torch.is_autocast_enabled(keys.device.type):
        dtype = torch.get_autocast_dtype(keys.device.type)
        qk, keys = qk.to(dtype), keys.to(dtype)
    elif qk.dtype != keys.dtype:
        qk = qk.to(keys.dtype)
    with torch.autocast(device_type=keys.device.type, enabled=False):
        out = _AttendAndMean.apply(qk, keys, mask)
    return out[:, :-1], out[:, -1]


def attend_and_mean_reference(qk, keys, mask):
    """``attend_and_mean`` through autograd: the twin the tests compare against."""
    w = _weights(qk, keys, mask)
    out = torch.bmm(w, keys)
    return out[:, :-1], out[:, -1]
