"""Compiled kernels of sequence extraction (numba, ``nogil``: two threads use two cores).

One newest-first walk of each exposure's window finds the rows of all five GSUs at once:
the three "last L matching" GSUs stop counting once full, the author search compares one
id per row, and the dot-product top-k looks each short-video play up in its room's row of
the hour's score table (float32, in cache), keeping the best L in a small heap. The walk
touches only the window's rows — never a pass over the whole shard — so the cost is
O(window) per exposure with a few nanoseconds a row.

Row references (``ref``) point into the two sources a window spans, as in ``seqindex``:
``ref >= 0`` is an old row (history[H-1]), ``ref <= -2`` is new row ``-ref - 2`` (the
hour's own rows), ``-1`` is padding.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# Row order of the (5, E, L) refs array: the order of ``gsu.GSUS``.
G_SHORT, G_TOPK, G_AUTHOR, G_LONG, G_LIVE = range(5)
SAMPLE = 4  # every 4th row of a window sets the top-k's pruning level


@nb.njit(nogil=True, cache=True, inline="always")
def _ref(i, is_new):
    return -(i + 2) if is_new else i


@nb.njit(nogil=True, cache=True)
def _last_actions(action, lo, hi, a1, a2, is_new, out, count) -> int:
    """Append rows hi-1 down to lo whose action is a1 or a2 to ``out`` until it is full."""
    for i in range(hi - 1, lo - 1, -1):
        if count >= len(out):
            break
        a = action[i]
        if a == a1 or a == a2:  # noqa: SIM109 (compiled: no tuple)
            out[count] = _ref(i, is_new)
            count += 1
    return count


@nb.njit(nogil=True, cache=True)
def _last_flagged(flags, lo, hi, bit, is_new, out, count) -> int:
    for i in range(hi - 1, lo - 1, -1):
        if count >= len(out):
            break
        if flags[i] & bit:
            out[count] = _ref(i, is_new)
            count += 1
    return count


@nb.njit(nogil=True, cache=True)
def _last_equal(col, lo, hi, value, is_new, out, count) -> int:
    for i in range(hi - 1, lo - 1, -1):
        if count >= len(out):
            break
        if col[i] == value:
            out[count] = _ref(i, is_new)
            count += 1
    return count


@nb.njit(nogil=True, cache=True)
def _levels_walk(action, emb, lo, hi, k, is_new, play, levels, row, tau, sk, sref, se, c):
    """Append the rows hi-1 .. lo (numbered k, k+1, ... newest first) whose level is at
    least ``tau`` to the survivors (number, ref, score column); returns their count."""
    for i in range(hi - 1, lo - 1, -1):
        col = emb[i] + 1
        lev = levels[row + col]
        if lev >= tau and action[i] == play:
            sk[c], sref[c], se[c] = k, _ref(i, is_new), col
            c += 1
        k += 1
    return c


@nb.njit(nogil=True, cache=True)
def _sample_levels(action, emb, lo, hi, k0, play, levels, row, out, ns) -> int:
    """Levels of the candidates among rows numbered k0, k0 + SAMPLE, ... (newest first)."""
    for k in range(k0, hi - lo, SAMPLE):
        i = hi - 1 - k
        lev = levels[row + emb[i] + 1]
        if lev > 0 and action[i] == play:
            out[ns] = lev
            ns += 1
    return ns


@nb.njit(nogil=True, cache=True)
def _topk(
    new_action, new_emb, n0, n1, old_action, old_emb, o0, o1, play, levels, exact, row,
    e, refs, top_scores, buf,
) -> None:  # fmt: skip
    """The exact top-L of one window, best first, ties newer first.

    Levels (a monotone uint16 quantisation of the scores) prune: the L-th largest level
    of a sample of the candidates, tau, is at most the L-th largest of all of them, so
    every top-L member has a level >= tau. Only those survivors (a few L) get their exact
    score looked up and ranked by one int64 key (score bits, then survivor order)."""
    length = refs.shape[2]
    nn = n1 - n0
    samp, sk, sref, se, keys = buf
    ns = _sample_levels(new_action, new_emb, n0, n1, 0, play, levels, row, samp, 0)
    first_old = (SAMPLE - nn % SAMPLE) % SAMPLE  # keep one stride across the two sources
    ns = _sample_levels(old_action, old_emb, o0, o1, first_old, play, levels, row, samp, ns)
    tau = np.uint16(1)
    if ns >= length:
        tau = max(tau, np.partition(samp[:ns], ns - length)[ns - length])
    c = _levels_walk(new_action, new_emb, n0, n1, 0, True, play, levels, row, tau,
                     sk, sref, se, 0)  # fmt: skip
    c = _levels_walk(old_action, old_emb, o0, o1, nn, False, play, levels, row, tau,
                     sk, sref, se, c)  # fmt: skip
    if c == 0:
        return
    scores = np.empty(c, np.float32)
    for t in range(c):
        scores[t] = exact[row + se[t]] + np.float32(0.0)  # -0.0 -> 0.0: they tie
    bits = scores.view(np.int32)
    for t in range(c):
        b = np.int64(bits[t])
        if b < 0:
            b ^= 0x7FFFFFFF
        keys[t] = (b << 32) | (0xFFFFFFFF - t)  # larger = better; earlier survivor = newer
    top = keys[:c]
    m = min(length, c)
    if c > m:
        top = np.partition(top, c - m)[c - m :]
    top = np.sort(top)[::-1]
    for q in range(m):
        t = 0xFFFFFFFF - (top[q] & 0xFFFFFFFF)
        refs[G_TOPK, e, q] = sref[t]
        top_scores[e, q] = exact[row + se[t]]


@nb.njit(nogil=True, cache=True)
def window_refs(
    old_action, old_flags, old_author, old_emb,
    new_action, new_flags, new_author, new_emb,
    olo, ohi, nlo, nhi, room_author, score_row, levels, exact, codes, todo, refs, top_scores,
) -> None:  # fmt: skip
    """Fill ``refs`` (5, E, L) (pre-filled with -1) and ``top_scores`` (E, L) for the
    exposures ``todo``. Per exposure e: window = new rows [nlo, nhi) then old rows
    [olo, ohi), newest first; ``score_row[e]`` is the offset of its room's row in the flat
    score tables (-1: no top-k): float32 ``exact`` and its uint16 ``levels`` (a row is
    1 + n_videos wide, column 0 = no embedding: -inf, level 0);
    ``codes`` = (play, live enter, live exit, long-view flag bit). The top-k is ordered by
    score descending, then newer first."""
    play, enter, exit_, bit = codes[0], codes[1], codes[2], codes[3]
    most = 0
    for e in todo:
        most = max(most, nhi[e] - nlo[e] + ohi[e] - olo[e])
    buf = (
        np.empty(most // SAMPLE + 2, np.uint16),
        np.empty(most, np.int64),
        np.empty(most, np.int64),
        np.empty(most, np.int64),
        np.empty(most, np.int64),
    )
    for e in todo:
        n0, n1, o0, o1 = nlo[e], nhi[e], olo[e], ohi[e]
        out = refs[G_SHORT, e]
        c = _last_actions(new_action, n0, n1, play, play, True, out, 0)
        _last_actions(old_action, o0, o1, play, play, False, out, c)
        out = refs[G_LIVE, e]
        c = _last_actions(new_action, n0, n1, enter, exit_, True, out, 0)
        _last_actions(old_action, o0, o1, enter, exit_, False, out, c)
        out = refs[G_LONG, e]
        c = _last_flagged(new_flags, n0, n1, bit, True, out, 0)
        _last_flagged(old_flags, o0, o1, bit, False, out, c)
        out = refs[G_AUTHOR, e]
        c = _last_equal(new_author, n0, n1, room_author[e], True, out, 0)
        _last_equal(old_author, o0, o1, room_author[e], False, out, c)
        row = score_row[e]
        if row < 0:
            continue
        _topk(new_action, new_emb, n0, n1, old_action, old_emb, o0, o1, play, levels, exact,
              row, e, refs, top_scores, buf)  # fmt: skip


@nb.njit(nogil=True, cache=True)
def gather(refs, old, new, pad, out) -> None:
    """out[...] = the column value each ref points at (``pad`` for -1); refs and out have
    the same shape, flattened."""
    r = refs.reshape(-1)
    o = out.reshape(-1)
    for k in range(r.size):
        x = r[k]
        if x >= 0:
            o[k] = old[x]
        elif x == -1:
            o[k] = pad
        else:
            o[k] = new[-x - 2]
