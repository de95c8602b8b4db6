"""Vectorised primitives of sequence extraction: segmented binary search, per-exposure
windows, "last L rows matching" over two sorted sources, exact hashed pair membership, and
the exact top-L selection (score desc, then recency) over padded candidate rows. No
per-user Python loop anywhere.

A *row reference* (``ref``) points into one of the two sources a window spans: the shard
of history[H-1] ("old") and the hour's own interactions ("new"): ``ref >= 0`` is an old
row, ``ref <= -2`` is new row ``-ref - 2``, ``ref == -1`` is padding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PAD_REF = -1
_INT64_MIN = np.iinfo(np.int64).min
_MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing multipliers
_MULT2 = np.uint64(0xC2B2AE3D27D4EB4F)


def new_ref(idx: np.ndarray) -> np.ndarray:
    return -(idx.astype(np.int64) + 2)


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


def last_l(
    pos_new: np.ndarray,
    a_new: np.ndarray,
    b_new: np.ndarray,
    pos_old: np.ndarray,
    a_old: np.ndarray,
    b_old: np.ndarray,
    length: int,
) -> np.ndarray:
    """(E, length) refs, newest first: per query the last ``length`` entries of
    pos_new[a_new:b_new], then (older) of pos_old[a_old:b_old]; padding -1."""
    j = np.arange(length)
    cnt_new = np.maximum(b_new - a_new, 0)[:, None]
    i_new = b_new[:, None] - 1 - j
    from_new = j < cnt_new
    i_old = b_old[:, None] - 1 - (j - cnt_new)
    from_old = ~from_new & (i_old >= a_old[:, None])
    refs = np.full((len(b_new), length), PAD_REF, np.int64)
    refs[from_new] = new_ref(pos_new[i_new[from_new]])
    refs[from_old] = pos_old[i_old[from_old]]
    return refs


def _hash_bits(n_keys: int) -> int:
    return int(np.clip(np.ceil(np.log2(max(n_keys, 1) * 64)), 12, 24))


def _pair_hash(a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """Fibonacci hash of the pairs (a, b) of int64 into ``bits`` bits (as int64 indices)."""
    h = np.ascontiguousarray(a, np.int64).view(np.uint64) * _MULT
    h += np.ascontiguousarray(b, np.int64).view(np.uint64)
    h *= _MULT2
    h >>= np.uint64(64 - bits)
    return h.view(np.int64)


def pair_positions(
    a: np.ndarray, b: np.ndarray, qa: np.ndarray, qb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows i (ascending) whose pair (a[i], b[i]) is one of the query pairs (qa[j], qb[j]),
    exactly, and the index of that pair among ``np.unique`` of the query pairs' keys
    (returned as the second array: a dense pair id, equal for equal pairs).

    One pass: a multiplicative hash of the pair into a bitmap of about 64x the number of
    query pairs rejects almost every row; only the hits are checked exactly (by ranks)."""
    n = len(a)
    if n == 0 or len(qa) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    bits = _hash_bits(len(qa))
    lut = np.zeros(1 << bits, bool)
    lut[_pair_hash(qa, qb, bits)] = True
    hit = np.flatnonzero(lut.take(_pair_hash(a, b, bits)))
    ua, ub = np.unique(qa), np.unique(qb)
    wanted = np.unique(pair_keys(qa, qb, ua, ub))
    key = pair_keys(a[hit], b[hit], ua, ub)
    at = np.minimum(np.searchsorted(wanted, key), len(wanted) - 1)
    ok = (key >= 0) & (wanted[at] == key)
    return hit[ok], at[ok]


def pair_keys(a: np.ndarray, b: np.ndarray, ua: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """Dense int64 key of each pair by the ranks of its parts in the sorted distinct
    ``ua`` / ``ub``; -1 when a part is not among them."""
    ia = np.minimum(np.searchsorted(ua, a), max(len(ua) - 1, 0))
    ib = np.minimum(np.searchsorted(ub, b), max(len(ub) - 1, 0))
    if len(ua) == 0 or len(ub) == 0:
        return np.full(len(a), -1, np.int64)
    ok = (ua[ia] == a) & (ub[ib] == b)
    return np.where(ok, ia.astype(np.int64) * len(ub) + ib, -1)


def sortable_key(scores: np.ndarray) -> np.ndarray:
    """float32 -> int64 with the same order (``-0.0`` counted as ``0.0``), as the high half
    of a 64-bit key."""
    s = np.ascontiguousarray(scores, np.float32) + np.float32(0.0)  # -0.0 + 0.0 == +0.0
    b = s.view(np.int32).astype(np.int64)
    return np.where(b < 0, b ^ 0x7FFFFFFF, b)


def topl_rows(
    quant: np.ndarray, index: np.ndarray, exact: np.ndarray, length: int, floor: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact top-``length`` of every row of a padded candidate matrix: by exact score
    descending, ties by column descending (columns are in recency order: newer wins).

    ``index`` (B, W) points into ``exact`` (float32 scores, -inf = no candidate) and
    ``quant`` (B, W) is a monotone quantisation of those scores (levels below ``floor``:
    no candidate); W is a multiple of ``length``. Returns (columns, scores, valid), each (B, length),
    best first.

    Pruning, exact: split the columns into m residue classes mod m (m = 4 * length when
    W allows, else length). They are disjoint, so the ``length``-th largest of the classes'
    quantised maxima, tau, is reached by ``length`` distinct candidates; any
    top-``length`` member is at least as good as one of them, hence (quantisation being
    monotone) its own level is >= tau. Only the few columns at or above tau are ranked,
    by one int64 key (exact score bits, column)."""
    b, w = quant.shape
    assert w % length == 0
    cols = np.full((b, length), -1, np.int64)
    vals = np.zeros((b, length), np.float32)
    valid = np.zeros((b, length), bool)
    m = 4 * length if w % (4 * length) == 0 and w >= 16 * length else length
    maxima = quant.reshape(b, w // m, m).max(axis=1)
    tau = np.partition(maxima, m - length, axis=1)[:, m - length]
    nz = np.flatnonzero(quant >= np.maximum(tau, floor)[:, None])
    if nz.size == 0:
        return cols, vals, valid
    row, col = np.divmod(nz, w)
    key = (sortable_key(exact.take(index.reshape(-1).take(nz))) << 32) | col
    counts = np.bincount(row, minlength=b)
    width = int(counts.max())
    slot = np.arange(len(nz)) - (np.cumsum(counts) - counts)[row]
    keys = np.full((b, width), _INT64_MIN, np.int64)
    keys[row, slot] = key
    k = min(length, width)
    if width > k:
        keys = np.partition(keys, width - k, axis=1)[:, width - k :]
    top = np.sort(keys, axis=1)[:, ::-1]
    ok = top != _INT64_MIN
    cols[:, :k] = np.where(ok, top & 0xFFFFFFFF, -1)
    hi = top >> 32
    bits = np.where(hi < 0, hi ^ 0x7FFFFFFF, hi).astype(np.int32)
    vals[:, :k] = np.where(ok, bits.view(np.float32), 0.0)
    valid[:, :k] = ok
    return cols, vals, valid


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


# ---- "last L matching" --------------------------------------------------------------------
def _two_source(old: np.ndarray, new: np.ndarray, i_old, i_new, in_new) -> np.ndarray:
    """old[i_old] or, where ``in_new``, new[i_new] (indices clipped: callers mask)."""
    out = old.take(i_old, mode="clip") if len(old) else np.zeros(i_old.shape, old.dtype)
    if len(new):
        np.copyto(out, new.take(i_new, mode="clip"), where=in_new)
    return out


def last_matching(
    old_vals: np.ndarray,
    new_vals: np.ndarray,
    match: Callable[[np.ndarray], np.ndarray],
    w: Windows,
    length: int,
    scan_rounds: int = 2,
) -> np.ndarray:
    """(E, length) refs, newest first: the last ``length`` rows of each window whose value
    satisfies ``match``. Dense predicates are found by scanning back from the newest row
    (``scan_rounds`` chunks of 2L, 8L, ... rows); windows still short of ``length`` after
    that are answered from the positions of every matching row (one pass over the rows)."""
    e = len(w.ohi)
    refs = np.full((e, length), PAD_REF, np.int64)
    n_new, total = w.n_new, w.n_new + w.n_old
    found = np.zeros(e, np.int64)
    active = np.flatnonzero(total > 0)
    # First chunk sized from the predicate's density (a sample of the rows), so one round
    # usually suffices; then x4 per round.
    sample = old_vals[:: max(1, len(old_vals) // 65536)]
    density = float(match(sample).mean()) if len(sample) else 1.0
    chunk = int(np.clip(np.ceil(1.5 * length / max(density, 1e-3)), 2 * length, 32 * length))
    seen = 0
    for _ in range(scan_rounds):
        if not active.size:
            break
        j = seen + np.arange(chunk)  # offsets back from the newest row
        nn = n_new[active, None]
        in_new = j < nn
        i_new = w.nhi[active, None] - 1 - j
        i_old = w.ohi[active, None] - 1 - (j - nn)
        m = match(_two_source(old_vals, new_vals, i_old, i_new, in_new))
        m &= j < total[active, None]
        rank = np.cumsum(m, axis=1, dtype=np.int32)
        rank += found[active, None].astype(np.int32)
        r, c = np.nonzero(m & (rank <= length))
        refs[active[r], rank[r, c] - 1] = np.where(in_new[r, c], new_ref(i_new[r, c]), i_old[r, c])
        found[active] = np.minimum(rank[:, -1], length)
        seen += chunk
        active = active[(found[active] < length) & (seen < total[active])]
        chunk *= 4
    if active.size:
        p_old, p_new = np.flatnonzero(match(old_vals)), np.flatnonzero(match(new_vals))
        refs[active] = last_l(
            p_new,
            np.searchsorted(p_new, w.nlo[active]),
            np.searchsorted(p_new, w.nhi[active]),
            p_old,
            np.searchsorted(p_old, w.olo[active]),
            np.searchsorted(p_old, w.ohi[active]),
            length,
        )
    return refs
