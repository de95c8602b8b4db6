"""The dot-product top-k of one window, exact, pruned by the hour's score levels
(``score_levels``): the compiled kernel ``gsu_scan.window_refs`` calls ``topk`` per exposure.

``levels`` are monotone uint16 levels of approximate scores a with |a - exact| <= eps. If
L candidates have level >= T, the L-th best exact score is >= floor(T) - eps, so every
top-L member has a >= floor(T) - 2 eps, i.e. a level >= level(floor(T) - 2 eps)
(``_bound``). Three passes, none of which branches per row:

1. the level of every row of the window into a buffer (a gather: unsigned indices, as
   numba drops its negative-index wraparound for them, 2.5x faster), whose every
   ``SAMPLE``-th entry gives T as the L-th largest (a histogram select);
2. the positions whose level reaches ``_bound(T)`` (a few L), compacted from the buffer
   in L1 without branches;
3. the L-th largest level among those survivors — the L-th largest of the whole window,
   since every candidate above the first bound is a survivor — gives a tighter bound that
   leaves about L, and only these are scored exactly (``videos`` . ``room``) and ranked
   by one int64 key (exact score bits, then recency).

Two designs were measured slower: a min-heap of the L best levels so far (its ~300
updates a window each mispredict a few branches) and compacting straight from the gather
(the survivor counter then waits on every level's load).
"""

from __future__ import annotations

from collections import namedtuple

import numba as nb
import numpy as np

from ml import kernel_cache  # noqa: F401  (numba's cache: keyed by all kernel sources)
from ml.cross.score_levels import level_floor, level_of

SAMPLE = 8  # every 8th row of a window sets the first bound
_FINE_BITS = 4  # a histogram bin holds 16 consecutive levels
N_BINS = 1 << (16 - _FINE_BITS)
HIST_SIZE = N_BINS + 16


# The buffers one window's top-k works in (numba compiles a namedtuple into a plain
# struct: naming the eight buffers costs nothing at run time).
TopkScratch = namedtuple(
    "TopkScratch",
    ["levels", "sample", "positions", "survivor_refs", "survivor_cols", "keys", "scores", "hist"],
)
# One source of a window's rows (history[H-1] or the hour's own rows): action codes and
# catalog rows (``emb_row``), the two columns the top-k reads.
TopkSource = namedtuple("TopkSource", ["action", "emb_row"])


@nb.njit(nogil=True, cache=True, inline="always")
def _ref(i, is_new):
    return -(i + 2) if is_new else i


@nb.njit(nogil=True, cache=True)
def _bound(level, eps) -> np.uint16:
    """level(floor(level) - 2 eps), with a margin for rounding to float32 (half an ulp)
    and the float64 arithmetic; at least 1 (level 0: no candidate)."""
    lo = np.float64(level_floor(level))
    x = lo - 2.0 * eps - (abs(lo) + 2.0 * eps) * 2.0**-22
    return max(np.uint16(1), level_of(np.float32(x)))


@nb.njit(nogil=True, cache=True)
def kth_largest(values, n, k, hist) -> np.uint16:
    """The k-th largest of values[:n] (uint16, 1 <= k <= n): counts per bin of 16 levels,
    the bin where the count from the top reaches k, then the 16 levels of that bin.
    ``hist`` (``HIST_SIZE`` uint32) is scratch."""
    hist[:] = 0
    top = 0
    for i in range(n):
        b = np.int64(values[i]) >> _FINE_BITS
        hist[b] += 1
        top = max(top, b)
    b, above = top, 0
    while above + hist[b] < k:
        above += hist[b]
        b -= 1
    fine = hist[N_BINS:]
    for i in range(n):
        v = np.int64(values[i])
        fine[v & 15] += (v >> _FINE_BITS) == b
    j, inside = 15, 0
    while above + inside + fine[j] < k:
        inside += fine[j]
        j -= 1
    return np.uint16((b << _FINE_BITS) | j)


@nb.njit(nogil=True, cache=True)
def _levels(action, emb, lo, hi, play, levels, row, lv, n) -> int:
    """Append the level of rows hi-1 .. lo (newest first) to lv[n:]; non-plays read
    column 0 (level 0): their emb_row is not a video's and may lie past the row.
    Unsigned indices: numba then drops its negative-index wraparound (2.5x faster)."""
    base, top = np.uint64(row), np.uint64(max(hi, 1) - 1)
    for j in range(np.uint64(max(hi - lo, 0))):
        i = top - j
        lv[np.uint64(n) + j] = levels[base + np.uint64(emb[i] + 1) * np.uint64(action[i] == play)]
    return n + max(hi - lo, 0)


@nb.njit(nogil=True, cache=True)
def _at_least(lv, n, tau, out) -> int:
    """Positions t < n with lv[t] >= tau into ``out``, in order, without branches (lv is
    in L1: the position counter's dependency chain stays short)."""
    c = 0
    for t in range(n):
        out[c] = t
        c += lv[t] >= tau
    return c


@nb.njit(nogil=True, cache=True)
def exact_scores(videos, cols, c, room, out) -> None:
    """out[t] = the float64 dot product of videos[cols[t] - 1] and ``room`` (float32
    vectors, summed in dimension order), rounded to float32, for t < c. Four vectors at a
    time: each sum is a chain of dependent additions, and four chains in flight hide
    their latency without changing any sum's order (so no bit of a result)."""
    dim = len(room)
    t = 0
    while t + 4 <= c:
        v0, v1 = videos[cols[t] - 1], videos[cols[t + 1] - 1]
        v2, v3 = videos[cols[t + 2] - 1], videos[cols[t + 3] - 1]
        a0 = a1 = a2 = a3 = 0.0
        for d in range(dim):
            r = np.float64(room[d])
            a0 += np.float64(v0[d]) * r
            a1 += np.float64(v1[d]) * r
            a2 += np.float64(v2[d]) * r
            a3 += np.float64(v3[d]) * r
        out[t], out[t + 1] = np.float32(a0), np.float32(a1)
        out[t + 2], out[t + 3] = np.float32(a2), np.float32(a3)
        t += 4
    while t < c:
        v, a = videos[cols[t] - 1], 0.0
        for d in range(dim):
            a += np.float64(v[d]) * np.float64(room[d])
        out[t] = np.float32(a)
        t += 1


@nb.njit(nogil=True, cache=True)
def topk(new, old, n0, n1, o0, o1, play, levels, row, videos, room, eps, out_refs, out_scores, buf):
    """The exact top-L of one window (``new`` rows [n0, n1) then ``old`` rows [o0, o1),
    newest first; both ``TopkSource``) into ``out_refs`` / ``out_scores`` (length L,
    pre-filled with padding), best first, ties newer first; ``buf`` a ``TopkScratch``.
    Returns the sum of reads made only to warm the cache (see ``gsu_scan.window_refs``:
    a value that reaches Python cannot be optimised away, so neither can those reads)."""
    length = len(out_refs)
    lv, samp, pos, hist = buf.levels, buf.sample, buf.positions, buf.hist
    sref, se, keys, sc = buf.survivor_refs, buf.survivor_cols, buf.keys, buf.scores
    new_emb, old_emb = new.emb_row, old.emb_row
    nn = _levels(new.action, new_emb, n0, n1, play, levels, row, lv, 0)
    n = _levels(old.action, old_emb, o0, o1, play, levels, row, lv, nn)
    ns = 0
    for t in range(0, n, SAMPLE):
        samp[ns] = lv[t]
        ns += lv[t] > 0
    tau = _bound(kth_largest(samp, ns, length, hist), eps) if ns >= length else np.uint16(1)
    c = _at_least(lv, n, tau, pos)
    if c > length:
        for t in range(c):
            samp[t] = lv[pos[t]]
        tau = _bound(kth_largest(samp, c, length, hist), eps)
        kept = 0
        for t in range(c):  # order (recency) is kept
            pos[kept] = pos[t]
            kept += samp[t] >= tau
        c = kept
    for t in range(c):
        p = pos[t]
        if p < nn:
            i = n1 - 1 - p
            sref[t], se[t] = _ref(i, True), new_emb[i] + 1
        else:
            i = o1 - 1 - (p - nn)
            sref[t], se[t] = _ref(i, False), old_emb[i] + 1
    if c == 0:
        return 0.0
    # Touch every survivor's vector first: independent loads overlap their cache misses
    # (the 128-byte rows are scattered over the whole embedding table).
    touched = 0.0
    half = videos.shape[1] // 2
    for t in range(c):
        touched += videos[se[t] - 1, 0] + videos[se[t] - 1, half]
    exact_scores(videos, se, c, room, sc)
    for t in range(c):
        sc[t] += np.float32(0.0)  # -0.0 ties 0.0
    bits = sc[:c].view(np.int32)
    for t in range(c):
        b = np.int64(bits[t])
        if b < 0:
            b ^= 0x7FFFFFFF
        keys[t] = (b << 32) | (0xFFFFFFFF - t)  # larger = better; earlier survivor = newer
    # Rank = how many keys are larger (keys are distinct): c^2 comparisons without
    # branches, which vectorise, where sorting ~L keys branched on every comparison.
    for t in range(c):
        k, rank = keys[t], 0
        for u in range(c):
            rank += keys[u] > k
        if rank < length:
            out_refs[rank] = sref[t]
            out_scores[rank] = sc[t]
    return touched


@nb.njit(nogil=True, cache=True)
def scratch(most):
    """The buffers ``topk`` works in, for windows of at most ``most`` rows."""
    return TopkScratch(
        np.empty(most + 1, np.uint16),  # levels: the window's level per row
        np.empty(most + 1, np.uint16),  # sample: sampled / survivors' levels
        np.empty(most + 1, np.int64),  # positions: survivors' positions in the window
        np.empty(most + 1, np.int64),  # survivor_refs: their row references
        np.empty(most + 1, np.int64),  # survivor_cols: their score-table columns
        np.empty(most + 1, np.int64),  # keys: rank keys (score bits, recency)
        np.empty(most + 1, np.float32),  # scores: exact scores
        np.empty(HIST_SIZE, np.uint32),  # hist: the histogram select's bins
    )
