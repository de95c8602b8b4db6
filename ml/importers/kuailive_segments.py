"""Content segments (``landing/content/<hour>/segments.parquet``) from ``live_emb_128_ts``.

The source has variable-length segments, each a 128-d feature and its END timestamp.
Source segment i of a room covers [end_{i-1}, end_i) (the first one starts at the room's
``start_timestamp``; a source segment never covers more than MAX_SOURCE_SEGMENT_MS before
its end, so a long pause leaves a gap instead of smearing one feature over it). The room's
timeline is cut into 30 s segments aligned at its start (schema.SEGMENT_MS), each into
three 10 s frames; a frame is the time-weighted mean of the source features overlapping it
(weight = overlap in ms). A 30 s segment exists when any of its frames is covered; a frame
with no coverage (the tail after the last source segment, or a gap) repeats the nearest
covered frame of the same segment. visual = the three frames, each reduced to 32-d by the
importer's fixed projection (``reduce_embedding``); ``feature_128`` (extra column) is the
segment's time-weighted mean before reduction and ``coverage_ms`` how much of the 30 s the
source covered. asr and comment are zero vectors: the dataset has no text features.

Source rows are grouped by room through a hash-partitioned spill (room id mod P), so
memory is bounded by one partition, whatever order the 18 shards are in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ml import schema as S
from ml.hours import HOUR_MS, landing_dir
from ml.importers.kuailive_catalog import Catalog
from ml.importers.kuailive_common import Context, fixed_list, l2_normalize, projection
from ml.importers.kuailive_events import at
from ml.importers.kuailive_source import REJECTS_SCHEMA
from ml.importers.spill import Spill
from ml.io.store import Store, parquet_bytes

TABLE = "live_emb_128_ts"
DIM = 128
FRAME_MS = S.SEGMENT_MS // S.FRAMES_PER_SEGMENT
MAX_SOURCE_SEGMENT_MS = 10 * 60_000
PARTITION_ROWS = 500_000  # source rows per hash partition (memory of the second phase)
CHUNK_ROWS = 100_000  # source rows re-bucketed at once (whole rooms)
_SRC = pa.schema(
    [
        ("room", pa.int64()),
        ("t", pa.int64()),
        ("feature", pa.list_(pa.float32(), DIM)),
        ("file", pa.string()),
        ("row_number", pa.int64()),
    ]
)
OUT_SCHEMA = pa.schema(
    [*S.SEGMENTS_SCHEMA, ("feature_128", pa.list_(pa.float32(), DIM)), ("coverage_ms", pa.int32())]
)


@dataclass
class Buckets:
    room: np.ndarray  # [m]
    index: np.ndarray  # [m] segment index (0 = the room's first 30 s)
    start: np.ndarray  # [m] segment start ms
    frames: np.ndarray  # [m, 3, k] time-weighted mean (projected) feature per 10 s frame
    frame_ms: np.ndarray  # [m, 3] ms of each frame covered by source segments
    mean: np.ndarray  # [m, d] time-weighted mean feature over the whole segment


def rebucket(
    room: np.ndarray,
    room_start: np.ndarray,
    end: np.ndarray,
    feat: np.ndarray,
    proj: np.ndarray | None = None,
) -> Buckets:
    """Re-bucket source segments sorted by (room, end) with unique ends per room and
    end > room_start (room_start given per row) into 30 s segments of 3 frames.

    With ``proj`` [d, k] the frames are averaged in the projected space (the same as
    projecting the averages, the projection being linear, at a quarter of the cost).
    """
    n, d = len(room), feat.shape[1]
    k_dim = d if proj is None else proj.shape[1]
    if n == 0:
        z = np.zeros(0, np.int64)
        return Buckets(
            z, z, z, np.zeros((0, 3, k_dim)), np.zeros((0, 3), np.int64), np.zeros((0, d))
        )
    first = np.ones(n, bool)
    first[1:] = room[1:] != room[:-1]
    a = np.concatenate(([0], end[:-1]))
    a = np.maximum(np.where(first, room_start, a), end - MAX_SOURCE_SEGMENT_MS)
    ra, rb = a - room_start, end - room_start  # 0 <= ra < rb
    f0, f1 = ra // FRAME_MS, (rb - 1) // FRAME_MS
    # one entry per (source segment, frame it overlaps), in (room, frame) order
    cnt = f1 - f0 + 1
    src = np.repeat(np.arange(n), cnt)
    f = np.repeat(f0, cnt) + np.arange(len(src)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    w = np.minimum(rb[src], (f + 1) * FRAME_MS) - np.maximum(ra[src], f * FRAME_MS)
    r, seg = room[src], f // S.FRAMES_PER_SEGMENT
    g = _starts((r, f))  # one group per (room, frame)
    wsum = np.add.reduceat(w, g)
    x = feat.astype(np.float64) if proj is None else feat.astype(np.float64) @ proj
    fsum = np.add.reduceat(x[src] * w[:, None], g, axis=0)
    gseg, slot = seg[g], f[g] % S.FRAMES_PER_SEGMENT
    sid = np.cumsum(_mask((r[g], gseg))) - 1
    m = int(sid[-1]) + 1
    frames = np.zeros((m, S.FRAMES_PER_SEGMENT, k_dim))
    cov = np.zeros((m, S.FRAMES_PER_SEGMENT), np.int64)
    frames[sid, slot] = fsum / wsum[:, None]
    cov[sid, slot] = wsum
    filled = cov > 0
    for j, k in ((1, 0), (2, 1), (1, 2), (0, 1)):  # forward fill, then backward fill
        take = ~filled[:, j] & filled[:, k]
        frames[take, j] = frames[take, k]
        filled[take, j] = True
    # the segment mean in full dimension: entries merged per (source segment, segment) first
    e = _starts((src, seg))
    w2, src2 = np.add.reduceat(w, e), src[e]
    s2 = _starts((room[src2], seg[e]))
    mean = np.add.reduceat(feat[src2].astype(np.float64) * w2[:, None], s2, axis=0)
    mean /= np.add.reduceat(w2, s2)[:, None]
    first_entry = e[s2]
    start = room_start[src[first_entry]] + seg[first_entry] * S.SEGMENT_MS
    return Buckets(room[src[first_entry]], seg[first_entry], start, frames, cov, mean)


def _mask(keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """True where a row starts a new run of equal keys."""
    new = np.zeros(len(keys[0]), bool)
    new[:1] = True
    for k in keys:
        new[1:] |= k[1:] != k[:-1]
    return new


def _starts(keys: tuple[np.ndarray, ...]) -> np.ndarray:
    return np.flatnonzero(_mask(keys))


def segment_table(bk: Buckets, cat: Catalog) -> pa.Table:
    """Segments with visual = the L2-normalised (projected) frames."""
    m = len(bk.room)
    visual = l2_normalize(bk.frames.reshape(m * S.FRAMES_PER_SEGMENT, -1)).reshape(m, -1)
    zeros = np.zeros((m, S.EMBED_DIM), np.float32)
    return pa.table(
        {
            "room_id": bk.room,
            "author_id": at(cat.room_author, cat.rooms.find(bk.room)[0]),
            "segment_index": bk.index.astype(np.int32),
            "segment_start_ms": bk.start,
            "segment_end_ms": bk.start + S.SEGMENT_MS,
            "visual": fixed_list(visual),
            "asr": fixed_list(zeros),
            "comment": fixed_list(zeros),
            "feature_128": fixed_list(bk.mean),
            "coverage_ms": bk.frame_ms.sum(axis=1).astype(np.int32),
        },
        schema=OUT_SCHEMA,
    )


def segment_pass(ctx: Context, cat: Catalog, hours: set[int]) -> Spill | None:
    """Spill the segments inside the window under their end hour; None without the table."""
    if not ctx.has(TABLE):
        return None
    st = ctx.stats[TABLE]
    parts = max(1, -(-(ctx.sources[TABLE].rows_hint() or 0) // PARTITION_ROWS))
    src = ctx.spill("segment_source", _SRC)
    for b, v in ctx.scan(TABLE):
        room = v.ints("live_stream_id", "null_id")
        t = v.ints("timestamp", "missing_time")
        x = v.vec("feature_128", DIM)
        v.mark("absurd_time", t < S.MIN_VALID_TIME_MS, "timestamp")
        pos, found = cat.rooms.find(room)
        v.mark("unknown_item", ~found, "live_stream_id")
        v.mark("before_room_start", t <= at(cat.room_start, pos), "timestamp")
        rows = np.flatnonzero(v.ok)
        tab = pa.table(
            {"room": room[rows], "t": t[rows], "feature": fixed_list(x[rows]),
             "file": [b.file] * len(rows), "row_number": b.file_row0 + rows},
            schema=_SRC,
        )  # fmt: skip
        part = room[rows] % parts
        for p in np.unique(part):
            src.add(f"{int(p):06d}", tab.filter(pa.array(part == p)))
    out = ctx.spill("content", OUT_SCHEMA)
    for key in src.groups():
        tab = src.read(key).sort_by(
            [
                ("room", "ascending"),
                ("t", "ascending"),
                ("file", "ascending"),
                ("row_number", "ascending"),
            ]
        )
        room, t = tab.column("room").to_numpy(), tab.column("t").to_numpy()
        dup = np.zeros(len(room), bool)
        dup[1:] = (room[1:] == room[:-1]) & (t[1:] == t[:-1])
        if dup.any():
            ctx.reject_rows(TABLE, _duplicate_rejects(tab.filter(pa.array(dup))))
            tab = tab.filter(pa.array(~dup))
            room, t = room[~dup], t[~dup]
        feat = np.asarray(tab.column("feature").combine_chunks().flatten()).reshape(-1, DIM)
        start = at(cat.room_start, cat.rooms.find(room)[0])
        for lo, hi in _room_chunks(room, CHUNK_ROWS):
            bk = rebucket(room[lo:hi], start[lo:hi], t[lo:hi], feat[lo:hi], projection(DIM))
            seg = segment_table(bk, cat)
            end = seg.column("segment_end_ms").to_numpy()
            inside = ctx.window.inside(end)
            st.outside_range += int(np.sum(~inside))
            st.out_rows += int(np.sum(inside))
            hour = end - end % HOUR_MS
            for h in np.unique(hour[inside]):
                hours.add(int(h))
                out.add(f"{int(h):015d}", seg.filter(pa.array(inside & (hour == h))))
    src.close()
    return out


def _room_chunks(room: np.ndarray, size: int) -> list[tuple[int, int]]:
    """[lo, hi) slices of about ``size`` rows that never split a room."""
    bounds, lo, n = [], 0, len(room)
    while lo < n:
        hi = min(lo + size, n)
        while hi < n and room[hi] == room[hi - 1]:
            hi += 1
        bounds.append((lo, hi))
        lo = hi
    return bounds


def _duplicate_rejects(tab: pa.Table) -> pa.Table:
    n = tab.num_rows
    rooms, times = tab.column("room").to_pylist(), tab.column("t").to_pylist()
    return pa.table(
        {
            "table": [TABLE] * n,
            "source_file": tab.column("file"),
            "row_number": tab.column("row_number"),
            "reason": ["duplicate_segment"] * n,
            "detail": [
                f"timestamp={t!r}: room {r} already has a segment ending then"
                for r, t in zip(rooms, times, strict=True)
            ],
            "row": [
                f'{{"live_stream_id": "{r}", "timestamp": {t}}}'
                for r, t in zip(rooms, times, strict=True)
            ],
        },
        schema=REJECTS_SCHEMA,
    )


def write_content_hour(store: Store, spill: Spill | None, hour: int) -> int:
    """Publish landing/content/<hour>/segments.parquet (empty when there are none)."""
    t = spill.read(f"{hour:015d}") if spill is not None else OUT_SCHEMA.empty_table()
    t = t.sort_by([("room_id", "ascending"), ("segment_index", "ascending")])
    return store.publish(
        f"landing/content/{landing_dir(hour)}",
        {"segments.parquet": parquet_bytes(t)},
        {"rows": t.num_rows, "source": "kuailive_m3"},
    )
