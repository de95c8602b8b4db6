"""The per-exposure windows of sequence extraction: the newest ``cap`` rows of the user
reported before t0, by binary searches in one compiled pass.

A *row reference* (``ref``) points into one of the two sources a window spans: the shard
of history[H-1] ("old") and the hour's own interactions ("new"): ``ref >= 0`` is an old
row, ``ref <= -2`` is new row ``-ref - 2``, ``ref == -1`` is padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from ml import kernel_cache  # noqa: F401  (numba's cache: keyed by all kernel sources)

PAD_REF = -1


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
    e = len(users)
    w = Windows(*(np.empty(e, np.int64) for _ in range(4)))
    _windows(
        np.ascontiguousarray(old_users, np.int64), np.ascontiguousarray(old_report, np.int64),
        np.ascontiguousarray(new_users, np.int64), np.ascontiguousarray(new_report, np.int64),
        np.ascontiguousarray(users, np.int64), np.ascontiguousarray(t0, np.int64), cap,
        w.olo, w.ohi, w.nlo, w.nhi,
    )  # fmt: skip
    return w


@nb.njit(nogil=True, cache=True)
def _before(users, report, u, t):
    """End of the rows of user u reported before t, and the start of u's rows."""
    start = np.searchsorted(users, u, "left")
    end = np.searchsorted(users, u, "right")
    return start + np.searchsorted(report[start:end], t, "left"), start


@nb.njit(nogil=True, cache=True)
def _windows(old_users, old_report, new_users, new_report, users, t0, cap, olo, ohi, nlo, nhi):
    for e in range(len(users)):
        o_end, o_start = _before(old_users, old_report, users[e], t0[e])
        n_end, n_start = _before(new_users, new_report, users[e], t0[e])
        n_new = min(n_end - n_start, cap)
        n_old = min(o_end - o_start, cap - n_new)
        olo[e], ohi[e], nlo[e], nhi[e] = o_end - n_old, o_end, n_end - n_new, n_end
