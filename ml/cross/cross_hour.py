"""One hour of the Cross side, shard by shard: the history merge (``user_history``) and
the GSU sequences of the hour's live exposures (``exposure_sequences``).

Both walk the shards with at most ``threads`` of them in memory at once (numpy releases
the GIL in its kernels, so two threads use two cores); a caller-supplied ``load_old(s)``
reads shard s of history[H-1], so the same code serves the lake, tests and benchmarks.
The end of the file is the lake side the assets call: history[H-1]'s shard loader, the
hour's interactions, the rows a check recomputes from, and the manifest statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.cross.catalog_view import CatalogView
from ml.cross.gsu import DEFAULT_LEN, extract
from ml.cross.history import (
    ACTION_NAMES,
    DEFAULT_CAP,
    Columns,
    MergeStats,
    empty_columns,
    interactions,
    merge,
    read_shard_for,
    resolve_catalog,
    shard_of,
    shard_parts,
    take,
    to_columns,
)
from ml.cross.score_levels import Scorer
from ml.io.store import Store
from ml.schema import GSUS, N_ACTION_CODES

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
    catalog: CatalogView,
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


# ---- the lake side of an hour: history[H-1], the hour's interactions, statistics ----------
@dataclass(frozen=True)
class PreviousHistory:
    """history[H-1] as published: its directory and manifest (None: the first hour)."""

    rel_dir: str
    manifest: dict

    @property
    def n_shards(self) -> int:
        return self.manifest["n_shards"]

    @property
    def cap(self) -> int:
        return self.manifest["cap"]


def previous_shard_loader(
    lake: Store, prev: PreviousHistory | None, catalog: CatalogView, n_shards: int
) -> LoadOld:
    """load_old(s): rows of shard s (of n_shards) of history[H-1], with catalog references
    re-resolved when the catalog changed since it was written."""

    def load(s: int) -> Columns:
        if prev is None:
            return empty_columns()
        cols = read_shard_for(lake, prev.rel_dir, prev.manifest, s, n_shards)
        if prev.manifest.get("catalog") != catalog.fingerprint:
            cols = resolve_catalog(cols, catalog)
        return cols

    return load


def hour_interactions(live: pa.Table, short_video: pa.Table, catalog: CatalogView) -> Columns:
    """The hour's interactions of both domains (raw events, ``RAW_COLUMNS``) as columns."""
    return to_columns(interactions(live, short_video, catalog))


def history_frame(
    load_old: LoadOld, n_shards: int, new: Columns, users: np.ndarray
) -> pd.DataFrame:
    """Rows of ``users`` in store order (history[H-1], then the hour's interactions) as a
    DataFrame, for the checks' recomputation; reads only the shards holding those users,
    one at a time."""
    parts = []
    for s in np.unique(shard_of(users, n_shards)):
        old = load_old(int(s))
        parts.append(take(old, np.flatnonzero(np.isin(old["user_id"], users))))
    parts.append(take(new, np.flatnonzero(np.isin(new["user_id"], users))))
    both = pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in parts[0]})
    # a user's old rows come from one shard and precede the hour's: a stable sort by user
    return both.iloc[np.argsort(both["user_id"].to_numpy(), kind="stable")]


@dataclass
class HistoryTotals:
    """The manifest figures of history[H], summed shard by shard as they are merged."""

    rows_per_shard: list[int] = field(default_factory=list)
    users_per_shard: list[int] = field(default_factory=list)
    evicted: int = 0
    max_len: int = 0

    def add(self, stats: MergeStats) -> None:
        self.rows_per_shard.append(stats.rows)
        self.users_per_shard.append(stats.users)
        self.evicted += stats.evicted
        self.max_len = max(self.max_len, stats.max_len)

    def manifest(self) -> dict:
        return {
            "rows": sum(self.rows_per_shard),
            "users": sum(self.users_per_shard),
            "rows_per_shard": self.rows_per_shard,
            "users_per_shard": self.users_per_shard,
            "evicted": self.evicted,
            "max_len": self.max_len,
        }


@dataclass
class SequenceFill:
    """How full each GSU is over the hour's exposures, summed shard by shard."""

    lengths: dict[str, list[np.ndarray]] = field(default_factory=lambda: {g: [] for g in GSUS})
    history_rows: int = 0

    def add(self, res: ShardSequences) -> None:
        self.history_rows += res.history_rows
        for g in GSUS:
            self.lengths[g].append(res.table.column(f"{g}_len").to_numpy())

    def manifest(self) -> dict:
        out: dict = {"history_rows_read": self.history_rows}
        for g in GSUS:
            v = np.concatenate(self.lengths[g]) if self.lengths[g] else np.zeros(0)
            out[f"{g}_nonempty"] = float((v > 0).mean()) if len(v) else 0.0
            out[f"{g}_mean_len"] = float(v.mean()) if len(v) else 0.0
        return out


def action_counts(new: Columns) -> dict[str, int]:
    """The hour's interactions per action name."""
    counts = np.bincount(new["action"].astype(np.int64), minlength=N_ACTION_CODES)
    return {ACTION_NAMES[c]: int(counts[c]) for c in ACTION_NAMES}
