"""Scores of the long-term dot-product GSU (``sv_topk``): the room x short-video table
computed once per hour, which the top-k walk (``gsu_scan``) looks candidates up in.

A score is the float64 dot product of the float32 vectors, rounded to float32: equal
inputs give equal scores whatever order a BLAS kernel sums in (each float32 product is
exact in float64, so the sums differ at most in bits that the rounding drops), and the
pandas reference computes the same numbers one exposure at a time.
"""

from __future__ import annotations

import numpy as np

from ml.data.history import Catalog

SCORE_BUDGET = 256 << 20  # bytes of room x video tables held at once
# Videos per GEMM: the block of video vectors stays in cache while every room meets it.
_VIDEO_BLOCK = 4096


def quantize(scores: np.ndarray) -> np.ndarray:
    """Monotone uint16 level of float32 scores, >= 1 for every score (-inf included): the
    top 16 bits of their order-preserving integer key (sign, exponent, 7 mantissa bits);
    -0.0 and 0.0 share a level. Level 0 is reserved for "no candidate"."""
    b = (np.asarray(scores, np.float32) + np.float32(0.0)).view(np.int32)  # -0.0 -> +0.0
    key = b ^ ((b >> 31) & 0x7FFFFFFF)
    key >>= 16
    key += 32768
    return np.maximum(key, 1).astype(np.uint16)


class Scorer:
    """Room x short-video scores, flat float32: room i of a table, video row v at
    ``i * width + v + 1``, column 0 of every room being -inf (no embedding: emb_row -1);
    beside it their uint16 levels (``quantize``; column 0: level 0), which the top-k scans
    first: half the bytes, so the hour's rows stay in cache. Built once per hour for every room the hour's exposures show when
    that fits ``budget`` bytes (the shards then share it); otherwise computed per shard,
    ``budget`` bytes at a time. Cost: rooms x videos x 32 multiply-adds (one GEMM per
    4096 videos)."""

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
        """(flat float32 scores, their uint16 levels) of ``rooms`` (catalog rows) against
        every short video."""
        out = np.empty((len(rooms), self.width), np.float32)
        out[:, 0] = -np.inf
        emb = self.catalog.rooms.embedding[rooms].astype(np.float64)
        for j in range(0, self.n_videos, _VIDEO_BLOCK):
            block = self.videos_t[:, j : j + _VIDEO_BLOCK]
            out[:, 1 + j : 1 + j + block.shape[1]] = emb @ block
        levels = quantize(out)
        levels[:, 0] = 0
        return out.reshape(-1), levels.reshape(-1)

    def chunks(self, rooms: np.ndarray):
        """((exact, levels) tables, row of each room in them, which of ``rooms``) for sorted distinct
        ``rooms``: one chunk when the hour's table covers them, else ``budget``-sized ones."""
        if self.rooms is not None and len(self.rooms):
            at = np.minimum(np.searchsorted(self.rooms, rooms), len(self.rooms) - 1)
            if np.array_equal(self.rooms[at], rooms):
                yield self.tables, at, np.arange(len(rooms))
                return
        for start in range(0, len(rooms), self.max_rooms):
            part = np.arange(start, min(start + self.max_rooms, len(rooms)))
            yield self.compute(rooms[part]), np.arange(len(part)), part
