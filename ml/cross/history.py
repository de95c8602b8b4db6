"""The cross-domain user history store (Moment & Cross §2.4): per user the newest
``DEFAULT_CAP`` = 10,000 interactions across short video and live.

What counts as an interaction — an action the user took, never an exposure:

* short video: ``play`` (value = watch_ms, watch_ratio = watch_ms / duration_ms, long view
  when the ratio >= ``schema.SV_LONG_VIEW_RATIO``), ``like``, ``comment``, ``follow``,
  ``share``;
* live: ``enter``, ``exit`` (value = watch_ms, long view when watch_ms >=
  ``schema.LONG_VIEW_MS``), ``like``, ``comment``, ``follow``, ``gift`` (value =
  gift_value), ``share``.

Impressions of either domain are not interactions: the recommender chose them, they say
little about interest, and at ~10x the volume of plays they would evict the actions from a
10,000-row store within days.

One row per interaction (``HISTORY_SCHEMA``), with the item's category and its row in the
published catalog table of its domain (``emb_row``: ``short_videos`` for short-video
actions, ``rooms`` for live ones; -1 when the catalog does not know the item), so sequences
gather embeddings from the catalog instead of copying them.

Layout: rows sorted by (user_id, report_time_ms, event_id) — the append order of a real
history store; event_id only breaks ties inside an hour and is not stored. Users are split
into ``n_shards`` by a stable hash (``shard_of``), one Parquet file per shard
(``shard-XX.parquet``); a user's rows are contiguous, so ``user_ranges`` (searchsorted on
user_id) gives every user's slice of a shard without any index file, and a reader holds
one shard at a time.

history[H] = history[H-1] + the interactions reported in H, newest ``cap`` per user kept.
"""

from __future__ import annotations

import io
import json
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml import schema as S
from ml.cross.catalog_view import CatalogView
from ml.io.store import SUCCESS, Store
from ml.schema import LONG_VIEW_MS, SV_LONG_VIEW_RATIO

DEFAULT_CAP = 10_000
DEFAULT_SHARDS = 8

# ---- action codes: the one definition -------------------------------------------------
# int8; 0 is padding in sequences. Short-video codes are < LIVE_BASE, live codes >= it.
PAD_ACTION = 0
LIVE_BASE = 16
ACTION_CODES: dict[tuple[str, str], int] = {
    (S.SHORT_VIDEO, "play"): 1,
    (S.SHORT_VIDEO, "like"): 2,
    (S.SHORT_VIDEO, "comment"): 3,
    (S.SHORT_VIDEO, "follow"): 4,
    (S.SHORT_VIDEO, "share"): 5,
    (S.LIVE, "enter"): LIVE_BASE,
    (S.LIVE, "exit"): LIVE_BASE + 1,
    (S.LIVE, "like"): LIVE_BASE + 2,
    (S.LIVE, "comment"): LIVE_BASE + 3,
    (S.LIVE, "follow"): LIVE_BASE + 4,
    (S.LIVE, "gift"): LIVE_BASE + 5,
    (S.LIVE, "share"): LIVE_BASE + 6,
}
ACTION_NAMES = {code: f"{d}:{t}" for (d, t), code in ACTION_CODES.items()}
SV_PLAY = ACTION_CODES[S.SHORT_VIDEO, "play"]
LIVE_ENTER = ACTION_CODES[S.LIVE, "enter"]
LIVE_EXIT = ACTION_CODES[S.LIVE, "exit"]
LIVE_GIFT = ACTION_CODES[S.LIVE, "gift"]
FLAG_LONG_VIEW = 1  # bit 0 of ``flags``

HISTORY_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("report_time_ms", pa.int64()),
        ("event_time_ms", pa.int64()),
        ("item_id", pa.int64()),  # short video or live room, per the action's domain
        ("author_id", pa.int64()),
        ("action", pa.int8()),  # ACTION_CODES
        ("category", pa.int32()),  # catalog category, -1 if unknown
        ("emb_row", pa.int32()),  # row in the catalog table of the domain, -1 if unknown
        ("value", pa.float64()),  # watch_ms (play, exit), gift_value (gift), else 0
        ("watch_ratio", pa.float32()),  # play: watch_ms / duration_ms, else 0
        ("flags", pa.int8()),  # FLAG_LONG_VIEW
    ]
)
COLUMNS = HISTORY_SCHEMA.names
Columns = dict[str, np.ndarray]


def resolve_catalog(cols: Columns, catalog: CatalogView) -> Columns:
    """(Re)compute category and emb_row of every row against ``catalog``."""
    live = cols["action"] >= LIVE_BASE
    item = cols["item_id"]
    row = np.where(live, -1, 0).astype(np.int32)
    cat = np.full(len(item), -1, np.int32)
    for table, sel in ((catalog.rooms, live), (catalog.short_videos, ~live)):
        if sel.any():
            r = table.rows_of(item[sel])
            row[sel] = r
            cat[sel] = np.where(r >= 0, table.category[np.maximum(r, 0)], -1)
    return {**cols, "category": cat, "emb_row": row}


# ---- interactions of an hour -------------------------------------------------------------
RAW_COLUMNS = [
    "event_id",
    "event_type",
    "user_id",
    "item_id",
    "author_id",
    "event_time_ms",
    "report_time_ms",
    "watch_ms",
    "duration_ms",
    "gift_value",
]


def _domain_rows(events: pa.Table, domain: str) -> pa.Table:
    types = [t for (d, t) in ACTION_CODES if d == domain]
    codes = np.array([ACTION_CODES[domain, t] for t in types] + [PAD_ACTION], np.int8)
    idx = pc.fill_null(pc.index_in(events.column("event_type"), value_set=pa.array(types)), -1)
    action = codes[idx.to_numpy(zero_copy_only=False)]
    keep = action != PAD_ACTION
    ev = events.filter(pa.array(keep))
    action = action[keep]

    def col(name: str, fill):
        return pc.fill_null(ev.column(name), fill).to_numpy(zero_copy_only=False)

    watch, dur, gift = col("watch_ms", 0), col("duration_ms", 0), col("gift_value", 0.0)
    value = np.zeros(len(action), np.float64)
    ratio = np.zeros(len(action), np.float32)
    flags = np.zeros(len(action), np.int8)
    if domain == S.SHORT_VIDEO:
        play = action == SV_PLAY
        value[play] = watch[play]
        ratio[play] = watch[play] / np.maximum(dur[play], 1)
        long_view = play & (watch >= SV_LONG_VIEW_RATIO * np.maximum(dur, 1))
    else:
        ex = action == LIVE_EXIT
        value[ex] = watch[ex]
        gf = action == LIVE_GIFT
        value[gf] = gift[gf]
        long_view = ex & (watch >= LONG_VIEW_MS)
    flags[long_view] = FLAG_LONG_VIEW
    return pa.table(
        {
            "event_id": ev.column("event_id"),
            "user_id": ev.column("user_id"),
            "report_time_ms": ev.column("report_time_ms"),
            "event_time_ms": ev.column("event_time_ms"),
            "item_id": ev.column("item_id"),
            "author_id": ev.column("author_id"),
            "action": action,
            "value": value,
            "watch_ratio": ratio,
            "flags": flags,
        }
    )


def interactions(live: pa.Table, short_video: pa.Table, catalog: CatalogView) -> pa.Table:
    """The interactions among clean raw events of both domains, as history rows sorted
    by (user_id, report_time_ms, event_id)."""
    both = pa.concat_tables(
        [_domain_rows(live, S.LIVE), _domain_rows(short_video, S.SHORT_VIDEO)]
    ).combine_chunks()
    order = pc.sort_indices(
        both,
        [("user_id", "ascending"), ("report_time_ms", "ascending"), ("event_id", "ascending")],
    )
    both = both.take(order)
    cols = resolve_catalog(
        {n: both.column(n).to_numpy() for n in both.column_names if n != "event_id"}, catalog
    )
    return to_table(cols)


# ---- columns <-> tables -------------------------------------------------------------------
def to_table(cols: Columns) -> pa.Table:
    return pa.table({n: cols[n] for n in COLUMNS}, schema=HISTORY_SCHEMA)


def to_columns(table: pa.Table) -> Columns:
    """numpy views of a history table (zero-copy when it has one chunk and no nulls)."""
    table = table.select(COLUMNS).combine_chunks()
    return {
        n: table.column(n).chunk(0).to_numpy() if table.num_rows else _empty(n) for n in COLUMNS
    }


def _empty(name: str) -> np.ndarray:
    return np.empty(0, HISTORY_SCHEMA.field(name).type.to_pandas_dtype())


def empty_columns() -> Columns:
    return {n: _empty(n) for n in COLUMNS}


def take(cols: Columns, idx: np.ndarray) -> Columns:
    return {n: a[idx] for n, a in cols.items()}


# ---- sharding -------------------------------------------------------------------------------
def shard_of(user_ids: np.ndarray, n_shards: int) -> np.ndarray:
    """Stable shard of each user: splitmix64(user_id) mod n (same on every machine)."""
    z = np.asarray(user_ids, np.int64).view(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(n_shards)).astype(np.int32)


def shard_name(shard: int) -> str:
    return f"shard-{shard:02d}.parquet"


def split_shards(cols: Columns, n_shards: int) -> list[Columns]:
    """Rows of each shard, order kept (stable)."""
    part = shard_parts(cols, n_shards)
    return [part(s) for s in range(n_shards)]


def shard_parts(cols: Columns, n_shards: int) -> Callable[[int], Columns]:
    """part(s) = the rows of shard s, order kept (stable): the split is decided once and
    each shard's rows are gathered only when asked for (by the thread that works on it)."""
    shard = shard_of(cols["user_id"], n_shards)
    order = np.argsort(shard, kind="stable")
    bounds = np.searchsorted(shard[order], np.arange(n_shards + 1))
    return lambda s: take(cols, order[bounds[s] : bounds[s + 1]])


def user_ranges(user_sorted: np.ndarray, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of each user's rows in a user-sorted column (empty if absent)."""
    return (
        np.searchsorted(user_sorted, users, side="left"),
        np.searchsorted(user_sorted, users, side="right"),
    )


# ---- the merge ---------------------------------------------------------------------------
@dataclass
class MergeStats:
    rows_old: int
    rows_new: int
    rows: int
    users: int
    evicted: int
    max_len: int


def merge(old: Columns, new: Columns, cap: int = DEFAULT_CAP) -> tuple[Columns, MergeStats]:
    """history[H-1] (one shard) + the shard's interactions of H, newest ``cap`` per user.

    Both inputs are sorted by (user_id, report time, tie order) and every new row was
    reported after every old row, so each user's new rows go after their old ones: a merge
    of two sorted runs by user, O(n) — no sort of the store."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    n_old, n_new = len(old["user_id"]), len(new["user_id"])
    n = n_old + n_new
    # Position of each new row in the merged order: after all old rows of users <= its own.
    p_new = np.searchsorted(old["user_id"], new["user_id"], side="right") + np.arange(n_new)
    is_new = np.zeros(n, bool)
    is_new[p_new] = True
    p_old = np.flatnonzero(~is_new)
    merged = {}
    for name in COLUMNS:
        out = np.empty(n, old[name].dtype)
        out[p_old] = old[name]
        out[p_new] = new[name]
        merged[name] = out
    u, t = merged["user_id"], merged["report_time_ms"]
    same = u[1:] == u[:-1]
    if np.any(u[1:] < u[:-1]) or np.any(same & (t[1:] < t[:-1])):
        raise ValueError("history rows are not sorted by (user_id, report_time_ms)")
    starts = np.flatnonzero(np.concatenate([[True], ~same])) if n else np.empty(0, np.int64)
    lengths = np.diff(np.append(starts, n))
    max_len = int(lengths.max(initial=0))
    evicted = 0
    if max_len > cap:
        ends = np.repeat(starts + lengths, lengths)
        keep = np.arange(n) >= ends - cap
        evicted = int(n - keep.sum())
        merged = {k: v[keep] for k, v in merged.items()}
        max_len = cap
    stats = MergeStats(n_old, n_new, n - evicted, len(starts), evicted, max_len)
    return merged, stats


# ---- reading and publishing shards ----------------------------------------------------------
def read_shard(store: Store, rel_dir: str, shard: int) -> Columns:
    data = store.read_bytes(posixpath.join(rel_dir, shard_name(shard)))
    return to_columns(pq.read_table(io.BytesIO(data), columns=COLUMNS))


def read_shard_for(
    store: Store, rel_dir: str, manifest: dict, shard: int, n_shards: int
) -> Columns:
    """Rows of target shard ``shard`` of ``n_shards`` from a published history, whatever its
    own shard count (re-sharding reads every old shard, one at a time)."""
    if manifest["n_shards"] == n_shards:
        return read_shard(store, rel_dir, shard)
    parts = []
    for s in range(manifest["n_shards"]):
        cols = read_shard(store, rel_dir, s)
        parts.append(take(cols, np.flatnonzero(shard_of(cols["user_id"], n_shards) == shard)))
    # Old shards partition the users, so a user's rows come from one of them: concatenating
    # and a stable sort by user keeps each user's order.
    cat = {n: np.concatenate([p[n] for p in parts]) for n in COLUMNS}
    return take(cat, np.argsort(cat["user_id"], kind="stable"))


def publish_streaming(
    store: Store, rel_dir: str, files: Iterable[tuple[str, bytes]], manifest: dict
) -> int:
    """``Store.publish`` for files produced one at a time (memory: one file): unpublish,
    wipe, write each, then the ``_SUCCESS`` manifest (same format) last."""
    store.delete(posixpath.join(rel_dir, SUCCESS))
    store.delete(rel_dir)
    sizes: dict[str, int] = {}
    for name, data in files:
        sizes[name] = store.write_bytes(posixpath.join(rel_dir, name), data)
    body = {**manifest, "files": dict(sorted(sizes.items()))}
    store.write_bytes(
        posixpath.join(rel_dir, SUCCESS), json.dumps(body, sort_keys=True, indent=1).encode()
    )
    return sum(sizes.values())
