"""ContentCTR's metrics (``reference/content_ctr_paper.txt`` §4, eq. 15, Tables 1-4), one per
function, plain numpy (+ one numba kernel for the global tau's inversion count).

s = predicted segment CTR, y = true (soft) CTR, m = the segment has a target. Undefined
inputs (fewer than two segments, all tied) give NaN, as in ``ml.evaluate.metrics``.

Kendall's tau, eq. 15: τ = (P - Q) / sqrt((P + Q + T)(P + Q + U)), P concordant pairs, Q
discordant, T tied only in s, U tied only in y; a pair tied in both counts in neither.
That is tau-b, what ``scipy.stats.kendalltau`` computes by default (the tests compare).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ml import kernel_cache  # noqa: F401  (numba's cache: keyed by all kernel sources)

HIGHLIGHT_SHARE = 0.3  # a room's top 30 % segments by true CTR are its highlights


def kendall_tau(s, y) -> float:
    """Global tau-b of eq. 15 over all pairs, O(n log n): n0 - n_s - n_y + n_sy - 2 Q
    concordant-minus-discordant pairs, with Q the strict inversions of s once the pairs
    are sorted by (y, s)."""
    s, y = np.asarray(s, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    n = len(s)
    if n < 2 or np.isnan(s).any() or np.isnan(y).any():
        return float("nan")
    order = np.lexsort((s, y))
    s_sorted, y_sorted = s[order], y[order]
    n0 = n * (n - 1) / 2
    tied_y = _tied_pairs(y_sorted)
    tied_both = _tied_pairs_joint(y_sorted, s_sorted)
    tied_s = _tied_pairs(np.sort(s))
    discordant = float(_strict_inversions(s_sorted.copy()))
    denom = (n0 - tied_s) * (n0 - tied_y)
    if denom <= 0:
        return float("nan")
    return float((n0 - tied_s - tied_y + tied_both - 2 * discordant) / np.sqrt(denom))


def kendall_tau_per_window(s, y, m) -> np.ndarray:
    """tau-b of each window over its segments with a target: s, y, m (N, W) -> (N,)."""
    s, y = np.asarray(s, np.float64), np.asarray(y, np.float64)
    m = np.asarray(m, bool)
    ds = np.sign(s[:, :, None] - s[:, None, :])
    dy = np.sign(y[:, :, None] - y[:, None, :])
    w = s.shape[1]
    upper = np.triu(np.ones((w, w), bool), 1)  # each pair once
    pair = m[:, :, None] & m[:, None, :] & upper
    both = np.where(pair, ds * dy, 0.0).sum((1, 2))  # P - Q
    not_tied_y = (pair & (dy != 0)).sum((1, 2))  # P + Q + T
    not_tied_s = (pair & (ds != 0)).sum((1, 2))  # P + Q + U
    denom = np.sqrt(not_tied_y.astype(np.float64) * not_tied_s)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, both / np.where(denom > 0, denom, 1), np.nan)


def mae(s, y) -> float:
    s, y = np.asarray(s, np.float64), np.asarray(y, np.float64)
    return float(np.mean(np.abs(s - y))) if s.size else float("nan")


def mean_ratio(s, y) -> float:
    """Table 4's avg. s/y, read as mean prediction / mean target (a per-segment ratio is
    undefined wherever a segment's CTR is 0)."""
    s, y = np.asarray(s, np.float64), np.asarray(y, np.float64)
    total = y.sum()
    return float(s.sum() / total) if total > 0 else float("nan")


def highlight_map(s, y, room, share: float = HIGHLIGHT_SHARE) -> float:
    """Mean over rooms of the average precision of ranking a room's segments by s for its
    highlights (the top ``share`` of its segments by y, at least one; ties at the cut are
    all highlights). Rooms with fewer than two segments are skipped. Tied predictions are
    ranked in input order (scikit-learn's average_precision_score instead averages over
    tied blocks; the tests compare on untied predictions)."""
    s, y = np.asarray(s, np.float64), np.asarray(y, np.float64)
    room = np.asarray(room)
    aps = []
    order = np.lexsort((-s, room))  # by room, then by prediction descending
    y_o, r_o = y[order], room[order]
    starts = np.flatnonzero(np.r_[True, r_o[1:] != r_o[:-1]])
    ends = np.r_[starts[1:], len(r_o)]
    for a, b in zip(starts, ends, strict=True):  # a Python step per room, not per segment
        if b - a < 2:
            continue
        yy = y_o[a:b]
        k = max(1, round(share * (b - a)))
        cut = np.sort(yy)[::-1][k - 1]
        relevant = yy >= cut
        hits = np.cumsum(relevant)
        precision = hits / np.arange(1, b - a + 1)
        aps.append(float((precision * relevant).sum() / relevant.sum()))
    return float(np.mean(aps)) if aps else float("nan")


def _tied_pairs(sorted_values: np.ndarray) -> float:
    """Σ t (t - 1) / 2 over the runs of equal values of a sorted array."""
    if len(sorted_values) == 0:
        return 0.0
    cut = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1], True])
    t = np.diff(cut).astype(np.float64)
    return float((t * (t - 1) / 2).sum())


def _tied_pairs_joint(a: np.ndarray, b: np.ndarray) -> float:
    """Tied pairs in both, for arrays sorted by (a, b)."""
    if len(a) == 0:
        return 0.0
    change = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    cut = np.flatnonzero(np.r_[True, change, True])
    t = np.diff(cut).astype(np.float64)
    return float((t * (t - 1) / 2).sum())


@nb.njit(cache=True, nogil=True)
def _strict_inversions(x: np.ndarray) -> int:
    """Pairs i < j with x[i] > x[j] (equal values are not inversions), by bottom-up merge
    sort: O(n log n). Sorts x in place."""
    n = len(x)
    buf = np.empty_like(x)
    count = 0
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if x[i] <= x[j]:  # equal: the left one first, no inversion
                    buf[k] = x[i]
                    i += 1
                else:
                    buf[k] = x[j]
                    count += mid - i
                    j += 1
                k += 1
            while i < mid:
                buf[k] = x[i]
                i += 1
                k += 1
            while j < hi:
                buf[k] = x[j]
                j += 1
                k += 1
        x[:n] = buf[:n]
        width *= 2
    return count
