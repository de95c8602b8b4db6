"""Compiled kernels of sequence extraction (numba, ``nogil``: two threads use two cores).

Per exposure, newest-first walks over its window only — never a pass over the whole
shard: the "last L matching" GSUs (author search included) count 64-row chunks without
branches and walk only the chunks that hold a match, stopping once full; the dot-product
top-k looks each short-video play up in its room's row of the hour's table of score
levels (uint16), keeps those at or above a proven lower bound and scores only
the few left at the end exactly (see ``topk``). Exposures of one room run together so
its row stays in cache. Cost: O(window), about a nanosecond a row for the top-k.
Hot loops index with unsigned integers: numba then drops its negative-index wraparound,
which made the top-k walk 2.5x slower.

Row references (``ref``) point into the two sources a window spans, as in ``windows``:
``ref >= 0`` is an old row (history[H-1]), ``ref <= -2`` is new row ``-ref - 2`` (the
hour's own rows), ``-1`` is padding.
"""

from __future__ import annotations

from collections import namedtuple

import numba as nb
import numpy as np

from ml import kernel_cache  # noqa: F401  (numba's cache: keyed by all kernel sources)
from ml.cross.topk import TopkSource, _ref, scratch, topk

# The columns a window's walks read from one source (history[H-1] or the hour's rows).
WalkSource = namedtuple("WalkSource", ["action", "flags", "author_id", "emb_row"])
# Each exposure's window: old rows [old_lo, old_hi) and new rows [new_lo, new_hi).
WindowBounds = namedtuple("WindowBounds", ["old_lo", "old_hi", "new_lo", "new_hi"])
# The hour's top-k inputs per exposure: ``score_row`` the offset of its room's row in the
# flat uint16 ``levels`` table (-1: no top-k; a row is 1 + n_videos wide, column 0 = no
# embedding, level 0), ``room_vecs`` its room's embedding, ``eps`` the bound of the
# levels' score error (``score_levels``); ``videos`` the short-video embeddings.
TopkInputs = namedtuple("TopkInputs", ["score_row", "levels", "videos", "room_vecs", "eps"])
# The action codes the walks match: a play, a live enter and exit, the long-view flag bit.
WalkCodes = namedtuple("WalkCodes", ["play", "enter", "exit", "long_view_bit"])

# The columns ``emit`` copies out of one source, per referenced row.
EmitSource = namedtuple(
    "EmitSource",
    ["item_id", "author_id", "event_time_ms", "report_time_ms", "category", "emb_row", "action"],
)

# Row order of the (5, E, L) refs array: the order of ``gsu.GSUS``.
G_SHORT, G_TOPK, G_AUTHOR, G_LONG, G_LIVE = range(5)


# Rows per chunk of the "last L matching" scans: a chunk is first counted without
# branches (vectorised), and only a chunk that holds a match is walked row by row.
SCAN_CHUNK = 64
ALL_BITS = -1  # mask: compare whole values


@nb.njit(nogil=True, cache=True)
def _last_matching(col, lo, hi, mask, a, b, is_new, out, count) -> int:
    """Append rows hi-1 down to lo with ``col & mask`` equal to a or b to ``out`` until it
    is full (values: mask ALL_BITS; a flag bit: mask = a = b = the bit)."""
    i = hi
    while i - lo >= SCAN_CHUNK and count < len(out):
        chunk = col[i - SCAN_CHUNK : i]
        hits = 0
        for k in range(SCAN_CHUNK):  # a constant trip count: unrolled and vectorised
            v = chunk[k] & mask
            hits += (v == a) | (v == b)
        if hits:
            count = _matching_rows(col, i - SCAN_CHUNK, i, mask, a, b, is_new, out, count)
        i -= SCAN_CHUNK
    if i > lo:
        count = _matching_rows(col, lo, i, mask, a, b, is_new, out, count)
    return count


@nb.njit(nogil=True, cache=True)
def _matching_rows(col, lo, hi, mask, a, b, is_new, out, count) -> int:
    for i in range(hi - 1, lo - 1, -1):
        if count >= len(out):
            break
        v = col[i] & mask
        if v == a or v == b:  # noqa: SIM109 (compiled: no tuple)
            out[count] = _ref(i, is_new)
            count += 1
    return count


@nb.njit(nogil=True, cache=True)
def _last_l(new_col, n0, n1, old_col, o0, o1, mask, a, b, out) -> None:
    """The window's last L matching rows, newest first: the hour's rows, then history's."""
    count = _last_matching(new_col, n0, n1, mask, a, b, True, out, 0)
    _last_matching(old_col, o0, o1, mask, a, b, False, out, count)


@nb.njit(nogil=True, cache=True)
def _touch(arr, lo, hi) -> np.int64:
    """Read one element per 64-byte line of arr[lo:hi], in address order: a sequential
    stream the hardware prefetches at full bandwidth, where the walks' scattered and
    backward reads would each wait for memory."""
    step = max(1, 64 // arr.itemsize)
    acc = 0
    for i in range(lo, hi, step):
        acc += arr[i]
    return acc


@nb.njit(nogil=True, cache=True)
def window_refs(old, new, bounds, room_author, table, codes, todo, refs, top_scores) -> float:
    """Fill ``refs`` (5, E, L) (pre-filled with -1) and ``top_scores`` (E, L) for the
    exposures ``todo``. Per exposure e: window = ``new`` rows [new_lo, new_hi) then ``old``
    rows [old_lo, old_hi) (``bounds``, a ``WindowBounds``), newest first; ``old``/``new``
    are ``WalkSource``s, ``table`` the ``TopkInputs``, ``codes`` the ``WalkCodes``. The
    top-k is ordered by score descending, then newer first.

    Returns the sum of every read made only to bring data into cache. The caller drops
    it, but a value that reaches Python cannot be optimised away, so neither can the reads
    (the one keep-alive idiom of these kernels)."""
    olo, ohi, nlo, nhi = bounds.old_lo, bounds.old_hi, bounds.new_lo, bounds.new_hi
    play, enter, exit_, bit = codes.play, codes.enter, codes.exit, codes.long_view_bit
    score_row, levels, videos = table.score_row, table.levels, table.videos
    old_topk, new_topk = TopkSource(old.action, old.emb_row), TopkSource(new.action, new.emb_row)
    most = 0
    for e in todo:
        most = max(most, nhi[e] - nlo[e] + ohi[e] - olo[e])
    buf = scratch(most)
    # The four "last L" GSUs user by user (a user's rows are contiguous, so sorting by
    # window start groups them): the user's window is read from memory once for all of
    # its exposures, then from cache.
    for e in todo[np.argsort(olo[todo], kind="mergesort")]:
        n0, n1, o0, o1 = nlo[e], nhi[e], olo[e], ohi[e]
        _last_l(new.action, n0, n1, old.action, o0, o1, ALL_BITS, play, play, refs[G_SHORT, e])
        _last_l(new.action, n0, n1, old.action, o0, o1, ALL_BITS, enter, exit_, refs[G_LIVE, e])
        _last_l(new.flags, n0, n1, old.flags, o0, o1, bit, bit, bit, refs[G_LONG, e])
        a = room_author[e]
        _last_l(new.author_id, n0, n1, old.author_id, o0, o1, ALL_BITS, a, a, refs[G_AUTHOR, e])
    # The top-k room by room (``todo``'s order), so a room's row of levels stays in cache.
    warm, last_row, width = 0.0, -2, videos.shape[0] + 1
    for k in range(len(todo)):
        e = todo[k]
        row = score_row[e]
        if row < 0:
            continue
        # A new room's row of levels comes into cache in one sequential pass when the
        # run of its exposures looks up at least two levels per cache line of it: the
        # walk's scattered reads of a cold row would each wait for memory, while a few
        # scattered reads cost less than streaming the whole row.
        if row != last_row:
            last_row, run_rows, m = row, 0, k
            while m < len(todo) and score_row[todo[m]] == row and run_rows < width:
                f = todo[m]
                run_rows += nhi[f] - nlo[f] + ohi[f] - olo[f]
                m += 1
            if run_rows * 32 >= width * levels.itemsize:  # lookups >= 2 x 64-byte lines
                warm += _touch(levels, row, row + width)
        warm += topk(
            new_topk, old_topk, nlo[e], nhi[e], olo[e], ohi[e], play, levels, row, videos,
            table.room_vecs[e], table.eps[e], refs[G_TOPK, e], top_scores[e], buf,
        )  # fmt: skip
    return warm


@nb.njit(nogil=True, cache=True, inline="always")
def _emit_row(src, i, t0, ints, small, acts, g, e, q):
    """Copy row i of ``src`` (an ``EmitSource``) to output slot (g, e, q); returns its
    report time."""
    ints[0, g, e, q] = src.item_id[i]
    ints[1, g, e, q] = src.author_id[i]
    ints[2, g, e, q] = t0 - src.event_time_ms[i]
    small[0, g, e, q] = src.category[i]
    small[1, g, e, q] = src.emb_row[i]
    acts[g, e, q] = src.action[i]
    return src.report_time_ms[i]


@nb.njit(nogil=True, cache=True)
def emit(refs, old, new, t0, ints, small, acts, masks, lens, max_report) -> None:
    """The output columns of every referenced row, in one pass over ``refs`` (G, E, L).

    ``old``/``new``: the two sources' ``EmitSource`` columns. Out: ``ints`` (3, G, E, L) int64 = item_id,
    author_id, gap_ms (t0 - event time); ``small`` (2, G, E, L) int32 = category, emb_row;
    ``acts``, ``masks`` (G, E, L) int8; ``lens`` (G, E) int16 and ``max_report`` (G, E)
    int64 (latest report time of the real items, -1 if none). Padding: 0 for ids, gaps,
    action and mask, -1 for category and emb_row."""
    n_g, n_e, length = refs.shape
    for g in range(n_g):
        for e in range(n_e):
            count, latest = 0, np.int64(-1)
            for q in range(length):
                x = refs[g, e, q]
                if x == -1:
                    ints[0, g, e, q] = ints[1, g, e, q] = ints[2, g, e, q] = 0
                    small[0, g, e, q] = small[1, g, e, q] = -1
                    acts[g, e, q] = masks[g, e, q] = 0
                    continue
                # Two calls, not one on ``old if x >= 0 else new``: the sources' arrays
                # may differ in type (read-only Arrow views), which numba cannot unify.
                if x >= 0:
                    reported = _emit_row(old, np.uint64(x), t0[e], ints, small, acts, g, e, q)
                else:
                    reported = _emit_row(new, np.uint64(-x - 2), t0[e], ints, small, acts, g, e, q)
                latest = max(latest, reported)
                masks[g, e, q] = 1
                count += 1
            lens[g, e] = count
            max_report[g, e] = latest
