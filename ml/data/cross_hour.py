"""One hour of the Cross side, shard by shard: the history merge (``user_history``) and
the GSU sequences of the hour's live exposures (``exposure_sequences``).

Both walk the shards with at most ``threads`` of them in memory at once (numpy releases
the GIL in its kernels, so two threads use two cores); a caller-supplied ``load_old(s)``
reads shard s of history[H-1], so the same code serves the lake, tests and benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ml.data.gsu import DEFAULT_LEN, extract
from ml.data.gsu_topk import Scorer
from ml.data.history import DEFAULT_CAP, Catalog, Columns, MergeStats, merge, shard_of, shard_parts

LoadOld = Callable[[int], Columns]


def _in_order(work: Callable[[int], object], n: int, threads: int, ahead: int = 0) -> Iterator:
    """work(0), work(1), ... in order, ``threads`` at a time and at most ``ahead`` (at
    least ``threads``) submitted but not yet consumed: a worker whose item finishes before
    an earlier one goes on to the next instead of idling. Work loads its shard when it
    starts and releases it when it ends, so at most ``threads`` shards are loaded; finished
    results wait, up to ``ahead`` of them, until consumed."""
    if threads <= 1 or n <= 1:
        for s in range(n):
            yield work(s)
        return
    ahead = max(ahead, threads)
    with ThreadPoolExecutor(threads) as pool:
        pending = [pool.submit(work, s) for s in range(min(ahead, n))]
        for s in range(n):
            result = pending[s].result()
            if s + ahead < n:
                pending.append(pool.submit(work, s + ahead))
            pending[s] = None
            yield result


def history_hour(
    new: Columns, load_old: LoadOld, n_shards: int, cap: int = DEFAULT_CAP, threads: int = 1
) -> Iterator[tuple[int, Columns, MergeStats]]:
    """(shard, history[H] rows of the shard, stats) for every shard, in order."""
    part = shard_parts(new, n_shards)

    def work(s: int):
        merged, stats = merge(load_old(s), part(s), cap)
        return s, merged, stats

    yield from _in_order(work, n_shards, threads)  # merged shards are big: none ahead


@dataclass
class ShardSequences:
    shard: int
    table: pa.Table  # the shard's exposures, in their input order
    rows_index: np.ndarray  # their row numbers in the hour's exposures
    history_rows: int
    seconds: float


def sequence_hour(
    exposures: pa.Table,
    new: Columns,
    catalog: Catalog,
    load_old: LoadOld,
    n_shards: int,
    length: int = DEFAULT_LEN,
    cap: int = DEFAULT_CAP,
    threads: int = 1,
) -> Iterator[ShardSequences]:
    """GSU sequences of the hour's exposures, one shard at a time (in shard order)."""
    room_rows = catalog.rooms.rows_of(exposures.column("room_id").to_numpy())
    scorer = Scorer(catalog, room_rows, threads=threads)  # shared by the shards if it fits
    ex_shard = shard_of(exposures.column("user_id").to_numpy(), n_shards)
    part = shard_parts(new, n_shards)

    def work(s: int) -> ShardSequences:
        t = time.perf_counter()
        old = load_old(s)
        idx = np.flatnonzero(ex_shard == s)
        table = extract(old, part(s), exposures.take(pa.array(idx)), catalog, length, cap, scorer)
        return ShardSequences(s, table, idx, len(old["user_id"]), time.perf_counter() - t)

    # The sequences of a shard are small next to its history: run ahead of the consumer.
    yield from _in_order(work, n_shards, threads, ahead=2 * threads)
