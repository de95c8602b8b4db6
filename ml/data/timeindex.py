"""Vectorised "per key, by time" look-ups: (key, time) pairs packed into one sorted int64
so numpy's binary search answers millions of as-of and window questions at once."""

from __future__ import annotations

import numpy as np


class KeyTimeIndex:
    """Events given as (key, time); answers per-(key, time) queries with searchsorted."""

    def __init__(
        self, keys: np.ndarray, times: np.ndarray, *, query_keys: np.ndarray, base: int, span: int
    ):
        self.uniq = np.unique(np.concatenate([keys, query_keys]))
        self.base, self.span = base, span
        if len(self.uniq) * span >= 2**62:
            raise OverflowError("key x time range too large to pack; split the window")
        self.packed = np.sort(self._pack(keys, times))

    def _pack(self, keys: np.ndarray, times: np.ndarray) -> np.ndarray:
        code = np.searchsorted(self.uniq, keys).astype(np.int64)
        t = np.clip(times.astype(np.int64) - self.base, 0, self.span - 1)
        return code * self.span + t

    def count_le(self, keys: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Number of events with the same key and time <= the query time."""
        q = self._pack(keys, times)
        key_start = np.searchsorted(
            self.packed, self._pack(keys, np.full(len(keys), self.base)), side="left"
        )
        return np.searchsorted(self.packed, q, side="right") - key_start

    def count_in(self, keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Number of events with the same key and lo < time <= hi."""
        q_hi = self._pack(keys, hi)
        q_lo = self._pack(keys, lo)
        return np.searchsorted(self.packed, q_hi, side="right") - np.searchsorted(
            self.packed, q_lo, side="right"
        )


def time_span(*arrays: np.ndarray, margin: int = 0) -> tuple[int, int]:
    """(base, span) covering every time in the arrays, with a margin on both sides."""
    lo = min((int(a.min()) for a in arrays if len(a)), default=0) - margin
    hi = max((int(a.max()) for a in arrays if len(a)), default=0) + margin
    return lo, hi - lo + 1
