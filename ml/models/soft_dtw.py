"""Soft-DTW (Cuturi & Blondel 2017), the distance ContentCTR's alignment loss is built on.

    cost (B, N, M) -> soft-DTW value (B,)

R[i, j] = cost[i, j] + softmin_γ(R[i-1, j-1], R[i-1, j], R[i, j-1]), R[0, 0] = 0, the
borders +∞, and the value is R[N, M]; softmin_γ(a) = -γ log Σ exp(-a / γ), which tends
to min as γ -> 0 (then soft-DTW is DTW). Every cell of one anti-diagonal (i + j = k)
depends only on the two diagonals before it, so the recursion runs as N + M - 1 steps
over whole diagonals of the whole batch, never a Python step per cell.

``soft_dtw`` is an autograd Function: the forward keeps R, and the backward is the
paper's recursion for E = ∂R[N, M] / ∂R (Algorithm 2), run over the same diagonals in
reverse; E is the gradient of the value with respect to the cost (the soft alignment).
Autograd through the forward loop (``soft_dtw_reference``, the plain twin the tests
compare with) records ~10 ops per diagonal and is ~10x slower forward + backward.

Diagonals are indexed by i: diagonal k holds R[i, k - i]. Out-of-grid cells hold ``FAR``
rather than +∞ in the forward (exp(-FAR / γ) is exactly 0 like exp(-∞), and a softmin
of three FARs stays finite) and -∞ in the backward (the paper's padding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Stand-in for +∞ outside the grid: far above any path cost (costs here are cosine
# distances in [0, 2], at most N + M of them on a path), finite in float32.
FAR = 1e10


def soft_dtw(cost: torch.Tensor, gamma: float) -> torch.Tensor:
    """Soft-DTW value of each (N, M) cost matrix of the batch: cost (B, N, M) -> (B,)."""
    if gamma <= 0:
        raise ValueError("gamma must be > 0 (use a small gamma for plain DTW)")
    return _SoftDTW.apply(cost, float(gamma))


def _softmin(a, b, c, gamma):
    low = torch.minimum(torch.minimum(a, b), c)
    total = torch.exp((low - a) / gamma) + torch.exp((low - b) / gamma)
    return low - gamma * torch.log(total + torch.exp((low - c) / gamma))


def _share(r_next, r_here, cost_next, gamma):
    """exp((R[next] - R[i, j] - cost[next]) / γ): the paper's a, b, c of Algorithm 2."""
    return torch.exp((r_next - r_here - cost_next) / gamma)


def _grid(n: int, m: int, k: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Index i (1..N) of diagonal k, and whether (i, k - i) is a grid cell."""
    i = torch.arange(1, n + 1, device=device)
    j = k - i
    return i, (j >= 1) & (j <= m)


class _SoftDTW(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cost, gamma):
        b, n, m = cost.shape
        skew = _skewed(cost, pad=0.0)  # (N+M+3, B, N+2): skew[k, :, i] = cost[i-1, k-i-1]
        r = cost.new_full((n + m + 3, b, n + 2), FAR)
        r[0, :, 0] = 0.0
        for k in range(2, n + m + 1):
            _, inside = _grid(n, m, k, cost.device)
            soft = _softmin(r[k - 2, :, :n], r[k - 1, :, :n], r[k - 1, :, 1 : n + 1], gamma)
            r[k, :, 1 : n + 1] = torch.where(inside, skew[k, :, 1 : n + 1] + soft, FAR)
        ctx.save_for_backward(skew, r)
        ctx.gamma, ctx.shape = gamma, (n, m)
        return r[n + m, :, n].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        skew, r = ctx.saved_tensors
        gamma, (n, m) = ctx.gamma, ctx.shape
        b = r.shape[1]
        # the paper's padding: -∞ beyond the grid, R[N+1, M+1] = R[N, M]
        k_idx = torch.arange(n + m + 3, device=r.device).view(-1, 1)
        i_idx = torch.arange(n + 2, device=r.device).view(1, -1)
        j_idx = k_idx - i_idx
        grid = (i_idx >= 1) & (i_idx <= n) & (j_idx >= 1) & (j_idx <= m)
        r = torch.where(grid.unsqueeze(1), r, float("-inf"))
        r[n + m + 2, :, n + 1] = r[n + m, :, n]
        e = r.new_zeros(r.shape)
        e[n + m + 2, :, n + 1] = 1.0
        for k in range(n + m, 1, -1):
            _, inside = _grid(n, m, k, r.device)
            here = r[k, :, 1 : n + 1]
            # how much of each successor's path runs through (i, j)
            below = _share(r[k + 1, :, 2 : n + 2], here, skew[k + 1, :, 2 : n + 2], gamma)
            right = _share(r[k + 1, :, 1 : n + 1], here, skew[k + 1, :, 1 : n + 1], gamma)
            corner = _share(r[k + 2, :, 2 : n + 2], here, skew[k + 2, :, 2 : n + 2], gamma)
            total = (
                e[k + 1, :, 2 : n + 2] * below
                + e[k + 1, :, 1 : n + 1] * right
                + e[k + 2, :, 2 : n + 2] * corner
            )
            e[k, :, 1 : n + 1] = torch.where(inside, total, 0.0)
        grad = _unskewed(e, n, m) * grad_out.view(b, 1, 1)
        return grad, None


def _skewed(cost: torch.Tensor, pad: float) -> torch.Tensor:
    """cost (B, N, M) laid out by anti-diagonal: (N + M + 3, B, N + 2), entry [k, :, i] =
    cost[:, i-1, k-i-1] for the grid cells (1 <= i <= N, 1 <= k - i <= M), ``pad`` else."""
    b, n, m = cost.shape
    k = torch.arange(n + m + 3, device=cost.device).view(-1, 1)
    i = torch.arange(n + 2, device=cost.device).view(1, -1)
    j = k - i
    inside = (i >= 1) & (i <= n) & (j >= 1) & (j <= m)
    flat = ((i - 1).clamp(0, n - 1) * m + (j - 1).clamp(0, m - 1)).reshape(-1)
    picked = cost.reshape(b, n * m).index_select(1, flat).view(b, n + m + 3, n + 2)
    picked = torch.where(inside.unsqueeze(0), picked, pad)
    return picked.transpose(0, 1).contiguous()


def _unskewed(skew: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The inverse of ``_skewed`` on the grid: (N + M + 3, B, N + 2) -> (B, N, M)."""
    i = torch.arange(1, n + 1, device=skew.device).view(-1, 1)
    j = torch.arange(1, m + 1, device=skew.device).view(1, -1)
    flat = ((i + j) * skew.shape[2] + i).reshape(-1)  # (k, i) in a (K, N+2) plane
    planes = skew.permute(1, 0, 2).reshape(skew.shape[1], -1)
    return planes.index_select(1, flat).view(-1, n, m)


def soft_dtw_reference(cost: torch.Tensor, gamma: float) -> torch.Tensor:
    """``soft_dtw`` differentiated by autograd through the diagonal loop (the plain twin)."""
    b, n, m = cost.shape
    skew = _skewed(cost, pad=FAR)
    far = cost.new_full((b, 1), FAR)
    two_back = torch.cat([cost.new_zeros(b, 1), cost.new_full((b, n + 1), FAR)], dim=1)
    one_back = cost.new_full((b, n + 2), FAR)
    for k in range(2, n + m + 1):
        diag = torch.cat([far, two_back[:, :-1]], dim=1)  # R[i-1, j-1]
        up = torch.cat([far, one_back[:, :-1]], dim=1)  # R[i-1, j]
        left = one_back  # R[i, j-1]
        stacked = torch.stack([diag, up, left], dim=-1)
        soft_min = -gamma * torch.logsumexp(-stacked / gamma, dim=-1)
        current = torch.where(skew[k] < FAR, skew[k] + soft_min, FAR)
        two_back, one_back = one_back, current
    return one_back[:, n]


def cosine_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cosine distance 1 - cos(x_i, y_j): x (B, N, D), y (B, M, D) -> (B, N, M) in [0, 2]."""
    return 1.0 - torch.bmm(F.normalize(x, dim=-1), F.normalize(y, dim=-1).transpose(1, 2))
