"""Binary-classification metrics for CTR evaluation, one per function, in plain numpy.

Every function is vectorised (sorts, cumulative sums, ``np.add.reduceat``; no loop over rows
or groups) so an hour of exposures costs a few sorts. Conventions shared by all of them:

- ``y`` holds 0/1 labels (bool, int or float); anything else is a ``ValueError``.
- A metric that is undefined for the input (empty input, a single class for AUC, no positive
  for calibration) is NaN rather than an exception: the evaluation stage reports whatever an
  hour holds, and a sparse task (gift) may have no positive in a small hour.
- A NaN prediction makes the metric NaN: a model that emits NaN must show up in the report,
  not be hidden by dropping rows.
- Scores are compared in float64; float32 ties stay ties.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "CalibrationBins",
    "auc",
    "calibration",
    "calibration_bins",
    "gauc",
    "logloss",
    "pr_curve",
]


def _arrays(y, p, weights=None):
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"y and p must be 1-d of equal length, got {y.shape} and {p.shape}")
    if y.dtype != np.bool_:
        yf = y.astype(np.float64)
        if not np.all((yf == 0) | (yf == 1)):
            raise ValueError("labels must be 0 or 1")
        y = yf == 1
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != p.shape:
            raise ValueError(f"weights must have shape {p.shape}, got {weights.shape}")
    return y, p, weights


def _tie_starts(*keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal consecutive rows across ``keys`` (already sorted)."""
    n = len(keys[0])
    change = np.zeros(n, dtype=bool)
    change[:1] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(change)


def auc(y, p, weights=None) -> float:
    """ROC AUC: P(score of a positive > score of a negative), ties counting one half.

    Equal to ``sklearn.metrics.roc_auc_score`` (average ranks / Mann-Whitney U), including
    with ``weights`` as sample weights. NaN for empty input, a single class or NaN scores.
    """
    y, p, w = _arrays(y, p, weights)
    if len(y) == 0 or np.isnan(p).any():
        return float("nan")
    w = np.ones(len(y)) if w is None else w
    order = np.argsort(p, kind="stable")
    ps, ys, ws = p[order], y[order], w[order]
    starts = _tie_starts(ps)
    # Per tie block: positive and negative weight; a positive beats every negative in lower
    # blocks and ties half of the negatives in its own block.
    pos = np.add.reduceat(np.where(ys, ws, 0.0), starts)
    neg = np.add.reduceat(np.where(ys, 0.0, ws), starts)
    neg_below = np.cumsum(neg) - neg
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos <= 0 or n_neg <= 0:
        return float("nan")
    return float(np.sum(pos * (neg_below + 0.5 * neg)) / (n_pos * n_neg))


def gauc(y, p, groups, weights=None) -> float:
    """Grouped AUC: the AUC within each group, averaged with the group's weight.

    As in industrial CTR work (DIN's GAUC with impression weights): a group (user) weighs
    the sum of its rows' ``weights`` (default 1 per row, i.e. its impression count); the AUC
    inside a group is unweighted. Groups holding a single class have no AUC and are left
    out of both the sum and the normaliser. NaN if no group qualifies or a score is NaN.
    """
    y, p, w = _arrays(y, p, weights)
    groups = np.asarray(groups)
    if groups.shape != p.shape:
        raise ValueError(f"groups must have shape {p.shape}, got {groups.shape}")
    if len(y) == 0 or np.isnan(p).any():
        return float("nan")
    # Integer group codes keep lexsort fast and accept any group dtype (strings included).
    _, g = np.unique(groups, return_inverse=True)
    g = g.ravel()
    order = np.lexsort((p, g))
    gs, ps, ys = g[order], p[order], y[order]
    w = np.ones(len(y)) if w is None else w[order]

    blocks = _tie_starts(gs, ps)  # runs of equal (group, score)
    pos = np.add.reduceat(ys.astype(np.float64), blocks)
    neg = (np.diff(np.append(blocks, len(ys))) - pos).astype(np.float64)
    block_group = gs[blocks]
    group_starts = _tie_starts(block_group)  # first block of each group
    # Negatives in lower-score blocks of the same group: global running sum minus the
    # running sum at the group's first block.
    cum_neg = np.cumsum(neg) - neg
    neg_below = cum_neg - np.repeat(
        cum_neg[group_starts], np.diff(np.append(group_starts, len(blocks)))
    )
    num = np.add.reduceat(pos * (neg_below + 0.5 * neg), group_starts)
    g_pos = np.add.reduceat(pos, group_starts)
    g_neg = np.add.reduceat(neg, group_starts)
    g_w = np.add.reduceat(w, _tie_starts(gs))

    ok = (g_pos > 0) & (g_neg > 0)
    if not ok.any() or g_w[ok].sum() <= 0:
        return float("nan")
    g_auc = num[ok] / (g_pos[ok] * g_neg[ok])
    return float(np.sum(g_w[ok] * g_auc) / np.sum(g_w[ok]))


def logloss(y, p, eps: float = 1e-7, weights=None) -> float:
    """Mean binary cross entropy with ``p`` clipped to ``[eps, 1 - eps]``.

    Equal to ``sklearn.metrics.log_loss(y, np.clip(p, eps, 1 - eps), labels=[0, 1])``; the
    clipping keeps one confident mistake from making the hour's loss infinite.
    """
    y, p, w = _arrays(y, p, weights)
    if len(y) == 0:
        return float("nan")
    p = np.clip(p, eps, 1.0 - eps)
    loss = -np.where(y, np.log(p), np.log1p(-p))
    if w is None:
        return float(loss.mean())
    return float(np.sum(w * loss) / np.sum(w)) if np.sum(w) > 0 else float("nan")


def calibration(y, p, weights=None) -> float:
    """Mean prediction over mean label (1 is calibrated, > 1 over-predicts).

    NaN when there is no positive label (or no row).
    """
    y, p, w = _arrays(y, p, weights)
    w = np.ones(len(y)) if w is None else w
    label_sum = np.sum(w * y)
    if len(y) == 0 or label_sum <= 0:
        return float("nan")
    return float(np.sum(w * p) / label_sum)


class CalibrationBins(NamedTuple):
    """One reliability-diagram point per non-empty bin, in increasing prediction order."""

    mean_p: np.ndarray
    mean_y: np.ndarray
    count: np.ndarray


def calibration_bins(y, p, n_bins: int = 10, strategy: str = "quantile") -> CalibrationBins:
    """Per-bin mean prediction, mean label and row count for a reliability diagram.

    ``strategy="quantile"`` (the default) puts equally many rows in each bin: CTR
    predictions crowd near 0, so uniform bins would put nearly every row in the first bin.
    ``"uniform"`` splits [0, 1] into ``n_bins`` equal widths. Bin edges and assignment are
    those of ``sklearn.calibration.calibration_curve`` (a value on an edge falls in the lower
    bin); heavy ties can merge quantile edges, and empty bins are left out. NaN predictions
    are left out too, since a NaN has no bin.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    y, p, _ = _arrays(y, p)
    keep = ~np.isnan(p)
    y, p = y[keep], p[keep]
    if len(p) == 0:
        empty = np.zeros(0)
        return CalibrationBins(empty, empty.copy(), np.zeros(0, dtype=np.int64))
    if strategy == "quantile":
        edges = np.percentile(p, np.linspace(0.0, 100.0, n_bins + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    ids = np.searchsorted(edges[1:-1], p)
    count = np.bincount(ids, minlength=n_bins)
    sum_p = np.bincount(ids, weights=p, minlength=n_bins)
    sum_y = np.bincount(ids, weights=y.astype(np.float64), minlength=n_bins)
    nz = count > 0
    return CalibrationBins(sum_p[nz] / count[nz], sum_y[nz] / count[nz], count[nz])


def pr_curve(y, p, weights=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds as ``sklearn.metrics.precision_recall_curve`` gives.

    ``thresholds`` are the distinct scores in increasing order; ``precision[i]`` and
    ``recall[i]`` are those of predicting positive when score >= ``thresholds[i]``, and a
    final point (precision 1, recall 0) closes the curve. With no positive, recall is 1
    everywhere (sklearn's convention). Empty input gives only the closing point.
    NaN scores are a ``ValueError`` here: a curve has no place for them.
    """
    y, p, w = _arrays(y, p, weights)
    if np.isnan(p).any():
        raise ValueError("scores contain NaN")
    if len(y) == 0:
        return np.ones(1), np.zeros(1), np.zeros(0)
    w = np.ones(len(y)) if w is None else w
    order = np.argsort(-p, kind="stable")
    ps, ys, ws = p[order], y[order], w[order]
    # The last row of each run of equal scores: everything up to it is predicted positive.
    last = np.append(np.flatnonzero(ps[1:] != ps[:-1]), len(ps) - 1)
    tps = np.cumsum(np.where(ys, ws, 0.0))[last]
    fps = np.cumsum(np.where(ys, 0.0, ws))[last]
    predicted = tps + fps
    precision = np.divide(tps, predicted, out=np.zeros_like(tps), where=predicted != 0)
    recall = np.ones_like(tps) if tps[-1] == 0 else tps / tps[-1]
    return (
        np.append(precision[::-1], 1.0),
        np.append(recall[::-1], 0.0),
        ps[last][::-1],
    )
