"""Losses of the three label streams (DESIGN §7.1) and the Cross alignment (§7.2).

Reduction: every stream loss is a SUM over the entries it labels (the paper's formulas sum
over tasks). A mean would divide each stream by its own count of labelled entries, and a
slow correction of -z then no longer cancels a fast negative's gradient exactly. A trainer
that wants a per-exposure scale divides every stream by one fixed number (e.g. the chunk's
exposure count), which keeps the identity.

Shapes: logits z, labels y and masks m are (B, T), T = len(TASKS); m is bool, True =
labelled (for the slow stream: a positive the fast stream missed).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

Stream = Literal["moment", "fast", "slow"]
STREAMS: tuple[str, ...] = ("moment", "fast", "slow")
# Training modes: which streams feed the model (the trainer picks; here for reference).
TRAINING_MODES: dict[str, tuple[str, ...]] = {
    "moment": ("moment",),
    "fast": ("fast",),
    "fast+slow": ("fast", "slow"),
}


def masked_bce(logits: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Sum of BCE over the labelled entries (m True); masked entries get zero gradient.

    ``torch.where`` (not a multiply) drops masked entries, so even a NaN label or an
    infinite logit there cannot leak into the sum or its gradient.
    """
    m = m.to(torch.bool)
    y = torch.where(m, y.to(logits.dtype), torch.zeros_like(logits))
    per = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return torch.where(m, per, torch.zeros_like(per)).sum()


def pu_slow_correction(logits: torch.Tensor, m_missing: torch.Tensor) -> torch.Tensor:
    """The slow stream's positive-unlabeled correction, -Σ_missing [log p - log(1-p)].

    log p - log(1 - p) is the logit itself, so this is -Σ_missing z: no sigmoid, no log,
    stable for every z. Its gradient -1 plus a fast negative's σ(z) gives σ(z) - 1, a
    positive's gradient.
    """
    m = m_missing.to(torch.bool)
    return -torch.where(m, logits, torch.zeros_like(logits)).sum()


def stream_loss(
    stream: Stream,
    logits: torch.Tensor,
    y: torch.Tensor | None,
    m: torch.Tensor | None,
) -> torch.Tensor:
    """Loss of one batch of samples of ``stream``.

    moment: BCE on the labelled (unmasked) entries, the first-positive / exit samples.
    fast:   BCE on every task (the 5-min stream labels all of them; ``m`` is ignored).
    slow:   the PU correction on ``m`` (the missing positives); ``y`` is not read.
    """
    if stream == "moment":
        return masked_bce(logits, y, m)
    if stream == "fast":
        return masked_bce(logits, y, torch.ones_like(logits, dtype=torch.bool))
    if stream == "slow":
        return pu_slow_correction(logits, m)
    raise ValueError(f"unknown stream {stream!r}; one of {STREAMS}")


# Elements of one block of the blocked InfoNCE's (K, rows, B) fp32 logits: 2 MB, so a block
# stays in cache, where a whole (K, B, B) tensor (16 MB at K=4, B=1024) is written, read
# and freshly allocated (page-faulted) several times a step by the plain twin.
BLOCK_ELEMENTS = 1 << 19
_LOG2_E = 1.0 / math.log(2.0)
_LN_2 = math.log(2.0)


def info_nce(
    anchor: torch.Tensor,
    other: torch.Tensor,
    temperature: float,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE with in-batch negatives, anchor -> other, both L2-normalised here.

    anchor (B, D); other (B, D) or (K, B, D) for K pairings with the same anchor; valid
    bool (B,) or (K, B): rows that take part (as query and as negative) in each pairing.
    Row b's positive is other[b]; the other valid rows of the batch are its negatives.
    Returns the mean over valid rows, averaged over the pairings that have one; 0 (with a
    graph) when no row is valid.

    Computed by ``_BlockedInfoNCE`` (row blocks, loss and gradient in one pass); the
    plain twin ``info_nce_reference`` is the same formula on whole tensors.
    """
    # float32 throughout, even under AMP: in fp16 the finfo.min bias below becomes -inf,
    # and an all-masked row's NaN would reach the gradients.
    with torch.autocast(device_type=anchor.device.type, enabled=False):
        a, o, weight, bias = _prepare(anchor, other, temperature, valid)
        return _BlockedInfoNCE.apply(a[0], o, weight, bias)


def info_nce_reference(anchor, other, temperature, valid=None) -> torch.Tensor:
    """``info_nce`` on whole (K, B, B) tensors through autograd: the twin tests compare to."""
    with torch.autocast(device_type=anchor.device.type, enabled=False):
        a, o, weight, bias = _prepare(anchor, other, temperature, valid)
        logits = torch.baddbmm(bias, a, o.transpose(1, 2))  # (K, B, B)
        # log_softmax + diagonal = cross entropy with target b for row b.
        logp = torch.log_softmax(logits, dim=-1).diagonal(dim1=1, dim2=2)  # (K, B)
        return -(weight * logp).sum()


def _prepare(anchor, other, temperature, valid):
    """-> (anchors / τ (K, B, D), others (K, B, D), row weights (K, B), column bias (K, 1, B)).

    A row's weight is its share of the result: 1 / (valid rows of its pairing x pairings
    with a valid row), 0 for a row that takes no part. An invalid row must be nobody's
    negative: its column gets a finfo.min bias, which keeps even an all-invalid row finite.
    """
    single = other.dim() == 2
    o = F.normalize((other.unsqueeze(0) if single else other).float(), dim=-1)
    k, b, _ = o.shape
    # τ folded into the anchor: one (B, D) pass instead of one over the (K, B, B) logits.
    a = (F.normalize(anchor.float(), dim=-1) / temperature).unsqueeze(0).expand(k, -1, -1)
    if valid is None:
        valid = torch.ones(k, b, dtype=torch.bool, device=o.device)
    elif valid.dim() == 1:
        valid = valid.unsqueeze(0).expand(k, b)
    n_k = valid.sum(1, keepdim=True).to(o.dtype)  # (K, 1)
    n_pairings = (n_k > 0).sum().clamp(min=1).to(o.dtype)
    weight = valid.to(o.dtype) / (n_k.clamp(min=1.0) * n_pairings)
    bias = torch.zeros(k, 1, b, device=o.device, dtype=o.dtype)
    bias = bias.masked_fill(~valid.unsqueeze(1), torch.finfo(o.dtype).min)
    return a, o, weight, bias


class _BlockedInfoNCE(torch.autograd.Function):
    """Σ_kb w_kb · (logsumexp_c l_kbc − l_kbb), l_kbc = a_b · o_kc + bias_kc, over row blocks.

    a (B, D) the scaled anchors (shared by the K pairings), o (K, B, D), w (K, B),
    bias (K, 1, B) -> scalar. A block of R rows builds its (K, R, B) logits in one bmm,
    the bias riding in it as one more key column (anchors get a 1 there: no broadcast
    copy). It takes the loss and, when a gradient is wanted, the logits' gradient
    w · (softmax − onehot) at once, which two more bmms turn into the block's share of
    ∂a and ∂o. Backward only scales the stored gradients: no (K, B, B) tensor ever
    exists, and the arithmetic is the twin's.
    """

    @staticmethod
    def forward(ctx, a, o, weight, bias):
        k, b, d = o.shape
        want_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        # Logits in base 2 (o scaled by log2 e): torch's CPU exp2 kernel is faster than its
        # exp, and 2^(x log2 e) = e^x. The bias row is not scaled: finfo.min stays
        # finite, so even an all-invalid row has a finite maximum.
        keys = torch.cat([o.transpose(1, 2) * _LOG2_E, bias], dim=1)  # (K, D+1, B)
        queries = torch.cat([a, a.new_ones(b, 1)], dim=1)  # (B, D+1)
        grad_a, grad_o_t = torch.zeros_like(a), o.new_zeros(k, d, b)
        rows = max(1, BLOCK_ELEMENTS // (k * b))
        total = a.new_zeros(())
        for r0 in range(0, b, rows):
            r1 = min(b, r0 + rows)
            logits = torch.bmm(queries[r0:r1].expand(k, -1, -1), keys)  # (K, R, B)
            positive = logits.diagonal(offset=r0, dim1=1, dim2=2).clone()  # (K, R)
            top = logits.amax(-1, keepdim=True)
            p = logits.sub_(top).exp2_()  # in place: the block's logits are not needed again
            norm = p.sum(-1, keepdim=True)
            w = weight[:, r0:r1]
            # logsumexp - positive, back in natural units
            nll = _LN_2 * (top.squeeze(-1) - positive) + norm.log().squeeze(-1)
            total = total + (w * nll).sum()
            if want_grad:
                g = p.mul_(w.unsqueeze(-1) / norm)  # w · softmax
                g.diagonal(offset=r0, dim1=1, dim2=2).sub_(w)
                grad_a[r0:r1] = torch.bmm(g, o).sum(0)
                grad_o_t.baddbmm_(a[r0:r1].T.expand(k, -1, -1), g)
        ctx.save_for_backward(grad_a, grad_o_t.transpose(1, 2))
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        grad_a, grad_o = ctx.saved_tensors
        return grad_a * grad_out, grad_o * grad_out, None, None
