"""ContentCTR's losses (``reference/content_ctr_paper.txt`` eqs. 6, 9-14).

Shapes: logits z (B, W) of the segments of B windows, soft CTR targets y (B, W) in [0, 1],
mask m bool (B, W) (True = a segment with a target). s = σ(z), the predicted CTR.

- ``point_loss``: BCE of s against the soft CTR y (eq. 6), mean over masked-in segments.
- ``pair_loss``: the pairwise logistic loss log(1 + exp(-σ (s_i - s_j))) over the pairs of
  one window with y_i > y_j (eq. 10), restricted by variant: 0 all pairs (eq. 10);
  1 the boundary-aware pairs, (y_i - y_j) - (s_i - s_j) >= 0 (eq. 11, the default);
  2 the wrongly ordered ones, s_i - s_j <= 0 (eq. 12); 3 those ordered right but by less
  than the target gap, y_i - y_j > s_i - s_j > 0 (eq. 13). The paper writes a sum; here
  it is divided by the batch's number of pairs with y_i > y_j (for every variant the
  same count), so the λ weights of eq. 14 mean the same at any window length or batch.
- ``align_loss``: InfoNCE (eq. 9) over soft-DTW distances of the text and visual token
  sequences, the negatives N temporal shuffles of the visual sequence. The paper's eq. 9
  puts +d/τ in the softmax with d from a cosine *similarity*; a DTW recursion takes the
  minimum cost path, so d here is the soft-DTW of the cosine *distance* 1 - cos and the
  logits are -d/τ: the aligned pair must be the closest.
- ``content_ctr_loss``: λ1 L_point + λ2 L_align + λ3 L_pair (eq. 14; 0.65, 0.15, 0.20).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ml.models.soft_dtw import cosine_cost, soft_dtw

PAIR_VARIANTS = (0, 1, 2, 3)


def point_loss(logits: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean BCE over masked-in segments against soft targets; 0 when none is."""
    m = m.to(torch.bool)
    y = torch.where(m, y.to(logits.dtype), torch.zeros_like(logits))
    per = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return torch.where(m, per, torch.zeros_like(per)).sum() / m.sum().clamp(min=1)


def pair_loss(
    logits: torch.Tensor, y: torch.Tensor, m: torch.Tensor, variant: int = 1, sigma: float = 10.0
) -> torch.Tensor:
    """The pairwise logistic loss of ``variant`` (module docstring), within each window."""
    if variant not in PAIR_VARIANTS:
        raise ValueError(f"pair loss variant {variant!r}: one of {PAIR_VARIANTS}")
    s = torch.sigmoid(logits)
    y = y.to(s.dtype)
    ds = s.unsqueeze(2) - s.unsqueeze(1)  # (B, W, W): s_i - s_j
    dy = y.unsqueeze(2) - y.unsqueeze(1)
    both = m.unsqueeze(2) & m.unsqueeze(1)
    pairs = both & (dy > 0)
    if variant == 0:
        keep = pairs
    elif variant == 1:
        keep = pairs & (dy - ds >= 0)
    elif variant == 2:
        keep = pairs & (ds <= 0)
    else:
        keep = pairs & (dy > ds) & (ds > 0)
    per = F.softplus(-sigma * ds)  # log(1 + exp(-σ (s_i - s_j)))
    return torch.where(keep, per, torch.zeros_like(per)).sum() / pairs.sum().clamp(min=1)


def temporal_shuffles(
    b: int, w: int, n: int, generator: torch.Generator, device=None
) -> torch.Tensor:
    """(n, B, W) random permutations of the W time steps, one per negative and window."""
    keys = torch.rand(n, b, w, generator=generator)
    return keys.argsort(dim=-1).to(device)


def align_loss(
    text: torch.Tensor,
    visual: torch.Tensor,
    shuffles: torch.Tensor,
    tau: float = 0.1,
    gamma: float = 0.1,
) -> torch.Tensor:
    """InfoNCE of each window's text sequence (B, W, d) against its visual sequence (the
    positive) and ``shuffles`` (N, B, W) of it (the negatives), by soft-DTW distance of the
    cosine cost; mean over windows. In float32 even under autocast."""
    n, b, w = shuffles.shape
    with torch.autocast(device_type=text.device.type, enabled=False):
        text, visual = text.float(), visual.float()
        rows = torch.arange(b, device=visual.device).view(1, b, 1)
        negatives = visual[rows, shuffles]  # (N, B, W, d)
        candidates = torch.cat([visual.unsqueeze(0), negatives], 0)  # (1 + N, B, W, d)
        cost = cosine_cost(
            text.unsqueeze(0).expand(n + 1, -1, -1, -1).reshape((n + 1) * b, w, -1),
            candidates.reshape((n + 1) * b, w, -1),
        )
        d = soft_dtw(cost, gamma).view(n + 1, b).T  # (B, 1 + N), the positive first
        target = torch.zeros(b, dtype=torch.long, device=d.device)
        return F.cross_entropy(-d / tau, target)


@dataclass(frozen=True)
class ContentLossConfig:
    point_weight: float = 0.65
    align_weight: float = 0.15
    pair_weight: float = 0.20
    pair_variant: int | None = 1  # None: no pairwise loss (Table 4's "point only")
    sigma: float = 10.0
    n_negatives: int = 8
    tau: float = 0.1
    gamma: float = 0.1
    use_align: bool = True

    def __post_init__(self):
        if self.pair_variant is not None and self.pair_variant not in PAIR_VARIANTS:
            raise ValueError(f"pair_variant {self.pair_variant!r}: one of {PAIR_VARIANTS} or None")


def content_ctr_loss(
    cfg: ContentLossConfig,
    logits: torch.Tensor,
    y: torch.Tensor,
    m: torch.Tensor,
    s_p: torch.Tensor | None,
    s_a: torch.Tensor | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """-> (total, {"point", "pair", "align"}) of eq. 14. The alignment needs both token
    sequences (it is 0 when a modality is ablated away or ``use_align`` is False)."""
    parts = {"point": point_loss(logits, y, m)}
    zero = logits.new_zeros(())
    parts["pair"] = (
        zero if cfg.pair_variant is None else pair_loss(logits, y, m, cfg.pair_variant, cfg.sigma)
    )
    if cfg.use_align and s_p is not None and s_a is not None:
        b, w = logits.shape
        shuffles = temporal_shuffles(b, w, cfg.n_negatives, generator, device=logits.device)
        parts["align"] = align_loss(s_a, s_p, shuffles, cfg.tau, cfg.gamma)
    else:
        parts["align"] = zero
    total = (
        cfg.point_weight * parts["point"]
        + cfg.pair_weight * parts["pair"]
        + cfg.align_weight * parts["align"]
    )
    return total, parts
