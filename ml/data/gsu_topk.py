"""The long-term dot-product GSU (``sv_topk``): per exposure the top L short-video plays
of its window by the dot product of the video's content embedding with the live room's,
ties by recency (newer first).

Scores come from a room x video table computed once per hour by one GEMM (``Scorer``):
the float64 dot product of the float32 vectors, rounded to float32, so equal inputs give
equal scores whatever order a BLAS kernel sums in. Per exposure, every candidate of the
window is looked up once in a uint16 quantisation of its room's row (compact), a
lower bound of the L-th best level is read off the rows' residue classes, and only the few
candidates at or above it are ranked exactly (``seqindex.topl_rows``). Windows are
processed in batches of similar length, ``BATCH_ELEMENTS`` rows at a time, in reused
buffers.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ml.data.history import SV_PLAY, Catalog, Columns
from ml.data.seqindex import PAD_REF, Windows, new_ref, topl_rows

SCORE_BUDGET = 256 << 20  # bytes of room x video tables held at once
BATCH_ELEMENTS = 1 << 18  # window rows per top-k batch (~2.3 MB of buffers)


def quantize(scores: np.ndarray) -> np.ndarray:
    """Monotone uint16 level of float32 scores: the top 16 bits of their order-preserving
    integer key (sign, exponent, 7 mantissa bits: 1/128 relative resolution); -0.0 and
    0.0 share a level (they tie). -inf gets ``NO_CANDIDATE``, below every finite score."""
    b = (np.asarray(scores, np.float32) + np.float32(0.0)).view(np.int32)  # -0.0 -> +0.0
    key = b ^ ((b >> 31) & 0x7FFFFFFF)
    key >>= 16
    key += 32768
    return key.astype(np.uint16)


NO_CANDIDATE = int(quantize(np.array([-np.inf], np.float32))[0])


class Scorer:
    """Room x short-video dot products: float64 sums of the float32 vectors, rounded to
    float32 (one BLAS GEMM per 16 rooms), plus their monotone uint16 levels (``quantize``)
    that the top-k scans first. Built once per hour for every room the hour's exposures
    show when that fits ``budget`` bytes (the shards then share it); otherwise computed
    per shard, ``budget`` bytes at a time. Cost: rooms x videos x 32 multiply-adds.

    Tables are flat: room row i, video v at ``i * width + v``; column ``n_videos`` of every
    room and the last element are "not a candidate" (-inf, ``NO_CANDIDATE``)."""

    def __init__(
        self, catalog: Catalog, room_rows: np.ndarray | None = None, budget: int = SCORE_BUDGET
    ):
        self.catalog = catalog
        self.videos_t = np.ascontiguousarray(catalog.short_videos.embedding.T, np.float64)
        self.n_videos = self.videos_t.shape[1]
        self.width = self.n_videos + 1
        self.max_rooms = max(1, budget // (6 * self.width))
        self.rooms: np.ndarray | None = None
        self.tables: tuple[np.ndarray, np.ndarray] | None = None
        if room_rows is not None:
            rooms = np.unique(room_rows[room_rows >= 0])
            if len(rooms) <= self.max_rooms:
                self.rooms, self.tables = rooms, self.compute(rooms)

    def compute(self, rooms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(exact float32 scores, their uint16 levels), flat, for ``rooms``."""
        n = len(rooms) * self.width
        exact = np.empty(n + 1, np.float32)
        quant = np.empty(n + 1, np.uint16)
        exact[n] = -np.inf
        e2 = exact[:n].reshape(len(rooms), self.width)
        q2 = quant[:n].reshape(len(rooms), self.width)
        emb = self.catalog.rooms.embedding[rooms].astype(np.float64)
        for i in range(0, len(rooms), 16):  # 16 rooms at a time: small, cached temporaries
            e2[i : i + 16, : self.n_videos] = emb[i : i + 16] @ self.videos_t
            e2[i : i + 16, self.n_videos] = -np.inf
            q2[i : i + 16] = quantize(e2[i : i + 16])
        quant[n] = NO_CANDIDATE
        return exact, quant

    def chunks(self, rooms: np.ndarray):
        """(tables, row of each room in them, which rooms) for sorted distinct ``rooms``."""
        if self.rooms is not None and len(self.rooms):
            at = np.minimum(np.searchsorted(self.rooms, rooms), len(self.rooms) - 1)
            if np.array_equal(self.rooms[at], rooms):
                yield self.tables, at, np.arange(len(rooms))
                return
        for start in range(0, len(rooms), self.max_rooms):
            part = np.arange(start, min(start + self.max_rooms, len(rooms)))
            yield self.compute(rooms[part]), np.arange(len(part)), part


def _candidates(cols: Columns, n_videos: int, pad: int) -> np.ndarray:
    """Per row its video column in the score tables (n_videos: not a candidate), with
    ``pad`` non-candidates in front so every window has a full-width view."""
    out = np.full(len(cols["action"]) + pad, n_videos, np.int32)
    ok = (cols["action"] == SV_PLAY) & (cols["emb_row"] >= 0)
    np.copyto(out[pad:], cols["emb_row"], where=ok)
    return out


def _fill_block(flat, cand, pad, hi, n, wo, off, col0, sentinel) -> None:
    """flat[:, col0 : col0 + wo] = table index of the rows [hi - wo, hi); the ones before
    each row's window (hi - n) become ``sentinel``."""
    if wo == 0:
        return
    block = flat[:, col0 : col0 + wo]
    np.add(sliding_window_view(cand, wo)[pad + hi - wo], off[:, None], out=block)
    deficit = wo - n
    if deficit.any():
        rows = np.repeat(np.arange(len(n)), deficit)
        cols = np.arange(len(rows)) - np.repeat(np.cumsum(deficit) - deficit, deficit)
        block[rows, cols] = sentinel


def topk_refs(
    old: Columns, new: Columns, room_rows: np.ndarray, w: Windows, length: int, scorer: Scorer
) -> tuple[np.ndarray, np.ndarray]:
    """(refs, scores), each (E, length), best first; rooms unknown to the catalog get none."""
    e = len(room_rows)
    refs = np.full((e, length), PAD_REF, np.int64)
    vals = np.zeros((e, length), np.float32)
    n_old, n_new = w.ohi - w.olo, w.nhi - w.nlo
    todo = np.flatnonzero((room_rows >= 0) & (n_old + n_new > 0))
    if todo.size == 0:
        return refs, vals
    pad_o, pad_n = int(n_old.max()), int(n_new.max())
    cand_o = _candidates(old, scorer.n_videos, pad_o)
    cand_n = _candidates(new, scorer.n_videos, pad_n)
    rooms, room_local = np.unique(room_rows[todo], return_inverse=True)
    buf = {"flat": np.empty(0, np.int64), "q": np.empty(0, np.uint16)}  # reused: no page faults

    def run_batch(idx: np.ndarray, off: np.ndarray, exact: np.ndarray, quant: np.ndarray):
        wo, wn = int(n_old[idx].max()), int(n_new[idx].max())
        unit = 4 * length if wo + wn >= 16 * length else length  # see topl_rows
        wp = max(length, math.ceil((wo + wn) / unit) * unit)
        lead, sentinel = wp - wo - wn, len(exact) - 1
        if len(buf["flat"]) < len(idx) * wp:
            buf["flat"] = np.empty(max(len(idx) * wp, 2 * BATCH_ELEMENTS), np.int64)
            buf["q"] = np.empty(len(buf["flat"]), np.uint16)
        flat = buf["flat"][: len(idx) * wp].reshape(len(idx), wp)
        flat[:, :lead] = sentinel
        _fill_block(flat, cand_o, pad_o, w.ohi[idx], n_old[idx], wo, off, lead, sentinel)
        _fill_block(flat, cand_n, pad_n, w.nhi[idx], n_new[idx], wn, off, lead + wo, sentinel)
        q = buf["q"][: flat.size].reshape(flat.shape)
        quant.take(flat, out=q)
        c, v, ok = topl_rows(q, flat, exact, length, NO_CANDIDATE + 1)
        c = c - lead
        old_ref = w.ohi[idx, None] - wo + c
        new_ref_ = new_ref(w.nhi[idx, None] - wn + (c - wo))
        refs[idx] = np.where(~ok, PAD_REF, np.where(c < wo, old_ref, new_ref_))
        vals[idx] = v

    for (exact, quant), row_in_table, part in scorer.chunks(rooms):
        in_part = np.zeros(len(rooms), bool)
        in_part[part] = True
        offset = np.zeros(len(rooms), np.int64)
        offset[part] = row_in_table.astype(np.int64) * scorer.width
        sel = todo[in_part[room_local]]
        sel_room = room_local[np.searchsorted(todo, sel)]
        lengths = n_old[sel] + n_new[sel]
        # Longest windows first (a batch's first row bounds its width); inside a length
        # class the rows of a room together, so its score row stays in cache.
        size_class = np.ceil(np.log(np.maximum(lengths, 1)) / np.log(1.25)).astype(np.int64)
        order = np.lexsort((sel_room, -size_class))
        sel, lengths, off = sel[order], lengths[order], offset[sel_room[order]]
        i = 0
        while i < len(sel):
            # Rows after i are in the same or a smaller class: at most 1.25x as long.
            step = max(1, int(BATCH_ELEMENTS // (1.25 * max(int(lengths[i]), length))))
            run_batch(sel[i : i + step], off[i : i + step], exact, quant)
            i += step
    return refs, vals
