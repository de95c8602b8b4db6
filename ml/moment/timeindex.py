"""Vectorised "per key, by time" look-ups: (key, time) pairs packed into one sorted int64
so numpy's binary search answers millions of window questions at once."""

from __future__ import annotations

import numpy as np


class KeyTimeIndex:
    """Events as (key, time); counts, for a fixed set of query keys, the events with the
    same key in a time window. Times must lie in [base, base + span)."""

    def __init__(
        self,
        keys: np.ndarray,
        times: np.ndarray,
        *,
        query_keys: np.ndarray,
        base: int,
        span: int,
        query_times: np.ndarray | None = None,
    ):
        """``query_times``: if every window bound moves with it (as t0 - W does), the
        queries are visited in (key, time) order, which makes the binary searches
        cache-friendly (~3x faster on large indexes)."""
        self.base, self.span = base, span
        top = max(int(keys.max(initial=0)), int(query_keys.max(initial=0)))
        low = min(int(keys.min(initial=0)), int(query_keys.min(initial=0)))
        if low >= 0 and (top + 1) * span < 2**62:
            k_code, q_code = keys.astype(np.int64), query_keys.astype(np.int64)  # ids pack as-is
        else:  # dense ranks for wide or negative ids
            uniq = np.unique(np.concatenate([keys, query_keys]))
            if len(uniq) * span >= 2**62:
                raise OverflowError("key x time range too large to pack; split the window")
            k_code = np.searchsorted(uniq, keys).astype(np.int64)
            q_code = np.searchsorted(uniq, query_keys).astype(np.int64)
        self.packed = np.sort(k_code * span + self._offset(times))
        # The queries' keys never change between windows: encode them once.
        self.q_base = q_code * span
        self.order = None if query_times is None else np.lexsort((query_times, q_code))

    def _offset(self, times: np.ndarray) -> np.ndarray:
        return np.clip(times.astype(np.int64) - self.base, 0, self.span - 1)

    def count_in(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Per query: events with the query's key and lo < time <= hi."""
        q_hi = self.q_base + self._offset(hi)
        q_lo = self.q_base + self._offset(lo)
        if self.order is None:
            return np.searchsorted(self.packed, q_hi, side="right") - np.searchsorted(
                self.packed, q_lo, side="right"
            )
        o = self.order
        counts = np.empty(len(q_hi), np.int64)
        counts[o] = np.searchsorted(self.packed, q_hi[o], side="right") - np.searchsorted(
            self.packed, q_lo[o], side="right"
        )
        return counts


def time_span(*arrays: np.ndarray, margin: int = 0) -> tuple[int, int]:
    """(base, span) covering every time in the arrays, with a margin on both sides."""
    lo = min((int(a.min()) for a in arrays if len(a)), default=0) - margin
    hi = max((int(a.max()) for a in arrays if len(a)), default=0) + margin
    return lo, hi - lo + 1
