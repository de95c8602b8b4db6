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
    """
    # float32 throughout, even under AMP: in fp16 the finfo.min bias below becomes -inf,
    # and an all-masked row's log_softmax NaN would reach the gradients.
    with torch.autocast(device_type=anchor.device.type, enabled=False):
        return _info_nce(anchor, other, temperature, valid)


def _info_nce(anchor, other, temperature, valid):
    single = other.dim() == 2
    o = F.normalize((other.unsqueeze(0) if single else other).float(), dim=-1)
    k, b, _ = o.shape
    # τ folded into the anchor: one (B, D) pass instead of one over the (K, B, B) logits.
    a = (F.normalize(anchor.float(), dim=-1) / temperature).unsqueeze(0).expand(k, -1, -1)
    if valid is None:
        valid = torch.ones(k, b, dtype=torch.bool, device=o.device)
    elif valid.dim() == 1:
        valid = valid.unsqueeze(0).expand(k, b)
    # An invalid row must be nobody's negative: a finfo.min column bias, added inside the
    # matmul (baddbmm), excludes it and keeps even an all-invalid row finite.
    bias = torch.zeros(k, 1, b, device=o.device, dtype=o.dtype)
    bias = bias.masked_fill(~valid.unsqueeze(1), torch.finfo(o.dtype).min)
    logits = torch.baddbmm(bias, a, o.transpose(1, 2))  # (K, B, B)
    # log_softmax + diagonal = cross entropy with target b for row b (logsumexp is ~5x
    # slower than log_softmax on CPU).
    logp = torch.log_softmax(logits, dim=-1).diagonal(dim1=1, dim2=2)  # (K, B)
    per_k = torch.where(valid, -logp, torch.zeros_like(logp)).sum(1)
    n_k = valid.sum(1).to(per_k.dtype)
    has = n_k > 0
    mean_k = torch.where(has, per_k / n_k.clamp(min=1.0), torch.zeros_like(per_k))
    return mean_k.sum() / has.sum().clamp(min=1).to(per_k.dtype)
