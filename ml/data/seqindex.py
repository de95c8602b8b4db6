"""Vectorised primitives of sequence extraction: segmented binary search and the
per-exposure windows (the newest ``cap`` rows of the user reported before t0).

A *row reference* (``ref``) points into one of the two sources a window spans: the shard
of history[H-1] ("old") and the hour's own interactions ("new"): ``ref >= 0`` is an old
row, ``ref <= -2`` is new row ``-ref - 2``, ``ref == -1`` is padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD_REF = -1


def seg_searchsorted(
    values: np.ndarray, lo: np.ndarray, hi: np.ndarray, q: np.ndarray
) -> np.ndarray:
    """Per query: the first i in [lo, hi) with values[i] >= q (hi if none), where
    ``values`` is sorted inside every queried [lo, hi). Vectorised bisection: about
    log2(max(hi - lo)) passes over the queries."""
    lo = np.asarray(lo, np.int64).copy()
    hi = np.asarray(hi, np.int64).copy()
    q = np.asarray(q)
    active = np.flatnonzero(lo < hi)
    while active.size:
        a, b = lo[active], hi[active]
        mid = (a + b) >> 1
        right = values[mid] < q[active]
        lo[active] = np.where(right, mid + 1, a)
        hi[active] = np.where(right, b, mid)
        active = active[lo[active] < hi[active]]
    return lo


# ---- windows --------------------------------------------------------------------------------
@dataclass
class Windows:
    """Per exposure, its window: rows [olo, ohi) of the old source, then [nlo, nhi) of the
    new one (newer). Old rows of a user all precede (in report time) the user's new rows."""

    olo: np.ndarray
    ohi: np.ndarray
    nlo: np.ndarray
    nhi: np.ndarray

    @property
    def n_old(self) -> np.ndarray:
        return self.ohi - self.olo

    @property
    def n_new(self) -> np.ndarray:
        return self.nhi - self.nlo


def windows(
    old_users: np.ndarray,
    old_report: np.ndarray,
    new_users: np.ndarray,
    new_report: np.ndarray,
    users: np.ndarray,
    t0: np.ndarray,
    cap: int,
) -> Windows:
    """The newest ``cap`` rows of each user reported strictly before t0 (both sources
    sorted by user, then report time)."""
    os_, oe = np.searchsorted(old_users, users, "left"), np.searchsorted(old_users, users, "right")
    ns, ne = np.searchsorted(new_users, users, "left"), np.searchsorted(new_users, users, "right")
    ohi = seg_searchsorted(old_report, os_, oe, t0)
    nhi = seg_searchsorted(new_report, ns, ne, t0)
    n_new = np.minimum(nhi - ns, cap)
    n_old = np.minimum(ohi - os_, cap - n_new)
    return Windows(ohi - n_old, ohi, nhi - n_new, nhi)
