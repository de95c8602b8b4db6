"""Duplicate event ids: which rows repeat an id, and which delivery of each id to keep.

Hashing every id is the costliest step of deduplication. A hash table of millions of
rows misses the cache on nearly every probe, so ``repeated`` first partitions the rows
by the top bits of their hash and then finds equal ids bucket by bucket in a table that
stays in cache; candidate pairs are compared byte for byte, so the answer is exact.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from ml import kernel_cache  # noqa: F401  (numba's cache: keyed by all kernel sources)
from ml import schema as S

_BUCKET_ROWS = 2048  # rows per partition: its table (2x, 12 bytes a slot) fits in L2


def deduplicate(
    table: pa.Table,
    valid: np.ndarray,
    row_file: np.ndarray,
    row_line: np.ndarray,
    prior_event_ids: pa.Array | None,
    hour_ms: int,
) -> tuple[np.ndarray, list[tuple[int, str, int]]]:
    """Keep the earliest-reported delivery of each event_id among ``valid`` rows.

    Returns (kept row indices in input order, [(row, reason, kept row or -1 for prior)]).
    Ties on report time go to the earlier file and line, so the choice is deterministic.
    """
    dups: list[tuple[int, str, int]] = []
    if len(valid) == 0:
        return valid, dups
    ids = table.column("event_id").combine_chunks()  # takes from many chunks are slow
    if len(valid) < table.num_rows:
        ids = ids.take(pa.array(valid))
    drop = np.zeros(len(valid), bool)
    if prior_event_ids is not None and len(prior_event_ids):
        # An event first delivered in the previous hour happened before this hour began
        # (event time <= its first report time < hour start, up to clock skew), so only
        # those rows can be cross-hour re-deliveries: probe the prior ids with them.
        et = table.column("event_time_ms").to_numpy()[valid]
        cand = np.flatnonzero(et < hour_ms + S.CLOCK_SKEW_MS)
        if len(cand):
            cand_ids = ids.take(pa.array(cand))
            seen = pc.filter(prior_event_ids, pc.is_in(prior_event_ids, value_set=cand_ids))
            hit = cand[pc.is_in(cand_ids, value_set=seen).to_numpy(zero_copy_only=False)]
            for j in hit:
                dups.append((int(valid[j]), "duplicate_prior_hour", -1))
            drop[hit] = True
    multi = np.flatnonzero(repeated(ids) & ~drop)
    if len(multi):
        codes = pc.dictionary_encode(ids.take(pa.array(multi))).indices
        codes = codes.to_numpy(zero_copy_only=False)
        rt = table.column("report_time_ms").to_numpy()[valid[multi]]
        order = np.lexsort((row_line[valid[multi]], row_file[valid[multi]], rt, codes))
        sorted_rows = multi[order]
        sorted_codes = codes[order]
        first = np.ones(len(sorted_rows), bool)
        first[1:] = sorted_codes[1:] != sorted_codes[:-1]
        kept_of_group = sorted_rows[
            np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))
        ]
        for j, k, is_first in zip(sorted_rows, kept_of_group, first, strict=True):
            if not is_first:
                drop[j] = True
                dups.append((int(valid[j]), "duplicate", int(valid[k])))
    dups.sort()
    return valid[~drop], dups


def repeated(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """bool per row: does this id occur more than once? (exact)"""
    arr = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    n = len(arr)
    if n == 0:
        return np.zeros(0, bool)
    if arr.null_count == 0 and arr.type in (pa.string(), pa.large_string()):
        wide = arr.type == pa.large_string()
        off = np.frombuffer(arr.buffers()[1], np.int64 if wide else np.int32)
        data = arr.buffers()[2]
        return _repeated_rows(
            off[arr.offset : arr.offset + n + 1],
            np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8),
        )
    return _repeated_exact(arr)


def _repeated_exact(arr: pa.Array) -> np.ndarray:
    vc = pc.value_counts(arr)
    dup_values = pc.filter(vc.field("values"), pc.greater(vc.field("counts"), 1))
    return pc.is_in(arr, value_set=dup_values).to_numpy(zero_copy_only=False)


@njit(nogil=True, cache=True)
def _repeated_rows(off, data):
    n = len(off) - 1
    hs = np.empty(n, np.uint64)
    for i in range(n):  # FNV-1a over the bytes, then a murmur3 finalizer to spread bits
        x = np.uint64(14695981039346656037)
        for k in range(off[i], off[i + 1]):
            x = (x ^ np.uint64(data[k])) * np.uint64(1099511628211)
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xFF51AFD7ED558CCD)
        x ^= x >> np.uint64(33)
        hs[i] = x
    bits = 0
    while (n >> bits) > _BUCKET_ROWS:
        bits += 1
    shift = np.uint64(64 - bits)
    first = np.zeros((1 << bits) + 1, np.int64)  # bucket b holds rows first[b]:first[b+1]
    for i in range(n):
        b = np.int64(hs[i] >> shift) if bits else 0
        first[b + 1] += 1
    biggest = 0
    for b in range(1 << bits):
        biggest = max(biggest, first[b + 1])
        first[b + 1] += first[b]
    fill = first[:-1].copy()
    bh = np.empty(n, np.uint64)  # hashes and rows, grouped by bucket
    br = np.empty(n, np.int64)
    for i in range(n):
        b = np.int64(hs[i] >> shift) if bits else 0
        bh[fill[b]] = hs[i]
        br[fill[b]] = i
        fill[b] += 1
    size = 1
    while size < 2 * biggest:
        size <<= 1
    keys = np.empty(size, np.uint64)
    rows = np.empty(size, np.int64)
    out = np.zeros(n, np.bool_)
    for b in range(1 << bits):
        lo, hi = first[b], first[b + 1]
        sz = 1
        while sz < 2 * (hi - lo):
            sz <<= 1
        rows[:sz] = -1
        for t in range(lo, hi):
            h, i = bh[t], br[t]
            j = np.int64(h & np.uint64(sz - 1))
            while rows[j] >= 0:  # linear probing; equal hashes get a byte comparison
                r = rows[j]
                if keys[j] == h and off[r + 1] - off[r] == off[i + 1] - off[i]:
                    same = True
                    for q in range(off[r + 1] - off[r]):
                        if data[off[r] + q] != data[off[i] + q]:
                            same = False
                            break
                    if same:
                        out[r] = True
                        out[i] = True
                        break
                j = (j + 1) & (sz - 1)
            if rows[j] < 0:
                rows[j] = i
                keys[j] = h
    return out
