"""The long-term dot-product GSU's hourly room x short-video table of score *levels*, which
the top-k (``topk``) prunes with before it scores the few survivors exactly.

A score is the float64 dot product of the float32 vectors, summed in dimension order and
rounded to float32. Each float32 product is exact in float64, so another summation order
(the pandas reference's BLAS) differs only in low float64 bits that the rounding to
float32 drops — unless a sum lies within a few float64 ulps of a float32 rounding
boundary, which the tests have not met. The table holds a monotone uint16 level of a
float32 GEMM's approximation of each score; ``Scorer.eps`` bounds the approximation's
error per room, so pruning by level stays exact (see ``topk``).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba as nb
import numpy as np
from threadpoolctl import ThreadpoolController

from ml import kernel_cache  # noqa: F401  (numba's cache: keyed by all kernel sources)
from ml.cross.catalog_view import CatalogView

SCORE_BUDGET = 256 << 20  # bytes of room x video level tables held at once
# Videos per GEMM: the block of video vectors stays in cache while every room meets it.
_VIDEO_BLOCK = 4096
_U32 = 2.0**-24  # float32 unit roundoff
_CONTROLLER: list[ThreadpoolController] = []
_BLAS_LOCK = threading.Lock()
_BLAS_USERS: list = [0, None]  # threads inside ``_single_threaded_blas``, its limiter


def _blas() -> ThreadpoolController:
    """One controller per process: building one inspects every loaded library (~2 ms)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


@contextmanager
def _single_threaded_blas():
    """BLAS limited to one thread while any caller is inside: the first one in sets the
    limit and the last one out restores it (two shard threads computing their tables at
    once would otherwise interleave threadpoolctl's save and restore, and could leave BLAS
    at one thread for the rest of the process)."""
    with _BLAS_LOCK:
        if _BLAS_USERS[0] == 0:
            _BLAS_USERS[1] = _blas().limit(limits=1, user_api="blas")
        _BLAS_USERS[0] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS[0] -= 1
            if _BLAS_USERS[0] == 0:
                _BLAS_USERS[1].restore_original_limits()
                _BLAS_USERS[1] = None


@nb.njit(nogil=True, cache=True, inline="always")
def level_of(x) -> np.uint16:
    """Monotone uint16 level of a float32 (>= 1; level 0 means "no candidate"): the top
    16 bits of its order-preserving integer key (sign, exponent, 7 mantissa bits); -0.0
    and 0.0 share a level."""
    b = np.int32(np.float32(x + np.float32(0.0)).view(np.int32))
    key = b ^ ((b >> 31) & 0x7FFFFFFF)
    return np.uint16(max((key >> 16) + 32768, 1))


@nb.njit(nogil=True, cache=True)
def level_floor(level) -> np.float32:
    """A lower bound of every float32 whose level is ``level`` (its class's lower end;
    -inf for the class of -inf, whose lowest keys are NaN patterns)."""
    key = np.int32((np.int32(level) - 32768) << 16)
    x = np.int32(key ^ ((key >> 31) & 0x7FFFFFFF)).view(np.float32)
    return np.float32(-np.inf) if np.isnan(x) else x


@nb.njit(nogil=True, cache=True)
def levels_into(approx, out, col0) -> None:
    """out[i, col0 + j] = level_of(approx[i, j]) for a C-contiguous float32 block, in
    integer arithmetic on the bits with unsigned indices, so that it vectorises (3x)."""
    m = approx.shape[1]
    for i in range(approx.shape[0]):
        bits = np.ascontiguousarray(approx[i]).view(np.int32)
        row = out[i, col0 : col0 + m]
        for j in range(np.uint64(m)):
            b = bits[j]
            b &= ~(-np.int32(b == np.int32(-(2**31))))  # -0.0 is 0.0
            key = b ^ ((b >> 31) & 0x7FFFFFFF)
            v = (key >> 16) + 32768
            row[j] = np.uint16(v if v > 1 else 1)


@nb.njit(nogil=True, cache=True)
def quantize(scores):
    """``level_of`` of every element of a 1-d float32 array."""
    out = np.empty(len(scores), np.uint16)
    for i in range(len(scores)):
        out[i] = level_of(scores[i])
    return out


@nb.njit(nogil=True, cache=True)
def max_norm(vectors) -> float:
    """The largest Euclidean norm among the rows of a 2-d float32 array (float64 sums)."""
    most = 0.0
    for i in range(vectors.shape[0]):
        acc = 0.0
        for d in range(vectors.shape[1]):
            acc += np.float64(vectors[i, d]) * np.float64(vectors[i, d])
        most = max(most, acc)
    return np.sqrt(most)


def error_bound(room_emb: np.ndarray, v_max: float) -> np.ndarray:
    """Per room, a bound on |float32 GEMM score - exact score| for every video of norm at
    most ``v_max``: a float32 dot product of length d in any summation order is within
    d·u·Σ|x_i y_i| of the true one (Higham), the exact score within u·|x·y| of it, and
    Σ|x_i y_i| <= |x|·|y|; twice that, for margin."""
    d = room_emb.shape[1]
    r = np.sqrt((room_emb.astype(np.float64) ** 2).sum(axis=1))
    return 2.0 * (d + 2) * _U32 * (1 + 1e-6) * r * v_max


class Scorer:
    """Room x short-video score levels, flat uint16: room i of a table, video row v at
    ``i * width + v + 1``, column 0 of every room being level 0 (no embedding: emb_row
    -1). Built once per hour for every room the hour's exposures show when that fits
    ``budget`` bytes (the shards then share it); otherwise computed per shard, ``budget``
    bytes at a time. Cost: rooms x videos x 32 float32 multiply-adds (one GEMM per 4096
    videos), which the exact scores (float64) of the survivors then correct."""

    def __init__(
        self,
        catalog: CatalogView,
        room_rows: np.ndarray | None = None,
        budget: int = SCORE_BUDGET,
        threads: int = 2,
    ):
        self.catalog = catalog
        self.threads = max(1, threads)
        self.videos = np.ascontiguousarray(catalog.short_videos.embedding, np.float32)
        self.n_videos = len(self.videos)
        self.width = self.n_videos + 1
        self.max_rooms = max(1, budget // (2 * self.width))
        self.room_emb = np.ascontiguousarray(catalog.rooms.embedding, np.float32)
        self.rooms: np.ndarray | None = None
        self.table: np.ndarray | None = None
        v_max = None
        if room_rows is not None:
            rooms = np.unique(room_rows[room_rows >= 0])
            if len(rooms) <= self.max_rooms:
                self.table, v_max = self._levels(rooms)
                self.rooms = rooms
        if v_max is None:
            v_max = max_norm(self.videos)
        self.eps = error_bound(self.room_emb, v_max)  # per catalog room row

    def compute(self, rooms: np.ndarray) -> np.ndarray:
        """Flat uint16 levels of ``rooms`` (catalog rows) against every short video."""
        return self._levels(rooms)[0]

    def _levels(self, rooms: np.ndarray) -> tuple[np.ndarray, float]:
        """(the flat levels of ``rooms``, the largest video norm), both block by block:
        each block of video vectors is in cache for its norms right after its GEMM."""
        out = np.zeros((len(rooms), self.width), np.uint16)
        emb = self.room_emb[rooms]
        local = threading.local()  # one GEMM output buffer per thread, reused

        def block(j: int) -> float:
            videos = self.videos[j : j + _VIDEO_BLOCK]
            if not hasattr(local, "scores"):
                local.scores = np.empty((len(rooms), _VIDEO_BLOCK), np.float32)
            scores = local.scores[:, : len(videos)]
            np.matmul(emb, videos.T, out=scores)
            levels_into(scores, out, 1 + j)
            return max_norm(videos)

        # Our threads over video blocks, BLAS single-threaded inside: OpenBLAS's own
        # workers would spin for a while after the GEMM, on the cores the walks need.
        with _single_threaded_blas(), ThreadPoolExecutor(self.threads) as pool:
            v_max = max(pool.map(block, range(0, self.n_videos, _VIDEO_BLOCK)), default=0.0)
        return out.reshape(-1), v_max

    def chunks(self, rooms: np.ndarray):
        """(levels table, row of each room in it, which of ``rooms``) for sorted distinct
        ``rooms``: one chunk when the hour's table covers them, else ``budget``-sized ones."""
        if self.rooms is not None and len(self.rooms):
            at = np.minimum(np.searchsorted(self.rooms, rooms), len(self.rooms) - 1)
            if np.array_equal(self.rooms[at], rooms):
                yield self.table, at, np.arange(len(rooms))
                return
        for start in range(0, len(rooms), self.max_rooms):
            part = np.arange(start, min(start + self.max_rooms, len(rooms)))
            yield self.compute(rooms[part]), np.arange(len(part)), part
