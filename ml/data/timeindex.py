"""Vectorised "per key, by time" look-ups: (key, time) pairs packed into one sorted int64
so numpy's binary search answers millions of window questions at once."""

from __future__ import annotations

import numpy as np


class KeyTimeIndex:
    """Events as (key, time); counts, for a fixed set of query keys, the events with the
    same key in a time window. Times must lie in [base, base + span)."""

    def __init__(
        self, keys: np.ndarray, times: np.ndarray, *, query_keys: np.ndarray, base: int, span: int
    ):
        uniq = np.unique(np.concatenate([keys, query_keys]))
        if len(uniq) * span >= 2**62:
            raise OverflowError("key x time range too large to pack; split the window")
        self.base, self.span = base, span
        self.packed = np.sort(
            np.searchsorted(uniq, keys).astype(np.int64) * span + self._offset(times)
        )
        # The queries' keys never change between windows: encode them once.
        self.q_base = np.searchsorted(uniq, query_keys).astype(np.int64) * span

    def _offset(self, times: np.ndarray) -> np.ndarray:
        return np.clip(times.astype(np.int64) - self.base, 0, self.span - 1)

    def count_in(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Per query: events with the query's key and lo < time <= hi."""
        right = np.searchsorted(self.packed, self.q_base + self._offset(hi), side="right")
        left = np.searchsorted(self.packed, self.q_base + self._offset(lo), side="right")
        return right - left


def time_span(*arrays: np.ndarray, margin: int = 0) -> tuple[int, int]:
    """(base, span) covering every time in the arrays, with a margin on both sides."""
    lo = min((int(a.min()) for a in arrays if len(a)), default=0) - margin
    hi = max((int(a.max()) for a in arrays if len(a)), default=0) + margin
    return lo, hi - lo + 1
