"""segment_windows: what ContentCTR trains on — per room, windows of ``WINDOW`` consecutive
30 s segments whose last segment ends in the hour H.

One row per window (room, last segment t): per segment of t-W+1 .. t its features
(visual = the 3 frames, text = ASR then comment), shows, enters and the soft CTR target
(enters / shows of ``live_segments``; no target where a segment had no show), and the
count features the ID baselines use, as they were known at the window's end: impressions,
enters, comments, gifts, likes, follows and exits whose event time falls in the segment
and whose report arrived by the last segment's end (nothing reported later leaks in).
A window exists where the room has all W segments (a room's first W - 1 segments, and
windows across a quarantined segment, have none) and its last segment had at least
``min_shows`` shows: a CTR of two shows is noise, not a target.

The windows of H reach back W - 1 segments (< 10 min), so they read ``live_segments`` and
the raw live events of H-1 and H. Vector widths come from the data (KuaiLive-M3 imports
carry 128-d features), never from constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml import schema as S
from ml.hours import HOUR_MS

WINDOW = 20
MIN_SHOWS = 3
# Count features per segment, in this order (the event types they count).
COUNT_FEATURES = ("impression", "enter", "comment", "gift", "like", "follow", "exit")


@dataclass(frozen=True)
class WindowStats:
    windows: int
    end_segments: int  # segments ending in H: each the last segment of at most one window
    too_few_shows: int  # ends whose segment had fewer than min_shows shows
    incomplete: int  # ends without all W segments (room too young, or a missing segment)
    counted_events: int  # (event, window) pairs that went into the count features

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def build_segment_windows(
    segments: pa.Table,
    live: pa.Table,
    room_starts: pa.Table,
    hour_ms: int,
    window: int = WINDOW,
    min_shows: int = MIN_SHOWS,
) -> tuple[pa.Table, WindowStats]:
    """(windows, stats) of hour ``hour_ms`` from ``live_segments`` of H-1 and H, the raw live
    events of H-1 and H and the catalog's room starts (``item_id``, ``start_ms``)."""
    if window < 1 or min_shows < 0:
        raise ValueError("window must be >= 1 and min_shows >= 0")
    for name in ("visual", "asr", "comment"):
        if not pa.types.is_fixed_size_list(segments.schema.field(name).type):
            raise ValueError(
                f"segments column {name!r} is {segments.schema.field(name).type}, expected a "
                "fixed-size list (live_segments publishes one width per column)"
            )
    seg = segments.sort_by([("room_id", "ascending"), ("segment_index", "ascending")])
    room = seg.column("room_id").to_numpy()
    idx = seg.column("segment_index").to_numpy().astype(np.int64)
    end = seg.column("segment_end_ms").to_numpy()
    shows = seg.column("shows").to_numpy()
    n = len(room)
    repeated = (room[1:] == room[:-1]) & (idx[1:] == idx[:-1])
    if repeated.any():
        at = int(np.flatnonzero(repeated)[0])
        raise ValueError(
            f"segment ({room[at]}, {idx[at]}) appears twice: the segments of H-1 and H "
            "overlap (each segment belongs to the one hour its end falls in)"
        )
    # the row W-1 before is the same room, W-1 segments earlier: then all W are present
    back = np.arange(n) - (window - 1)
    ok_back = back >= 0
    complete = np.zeros(n, bool)
    b = np.where(ok_back, back, 0)
    complete[ok_back] = (room[b] == room)[ok_back] & (idx - idx[b] == window - 1)[ok_back]
    ends_here = (end >= hour_ms) & (end < hour_ms + HOUR_MS)
    enough = shows >= min_shows
    last = np.flatnonzero(ends_here & complete & enough)
    rows = last[:, None] - np.arange(window - 1, -1, -1)[None, :]  # (N, W) segment rows

    counts, counted = _counts_at_window_end(seg, last, rows, live, room_starts, window)
    out = _window_table(seg, last, rows, counts, window)
    stats = WindowStats(
        windows=len(last),
        end_segments=int(ends_here.sum()),
        too_few_shows=int((ends_here & complete & ~enough).sum()),
        incomplete=int((ends_here & ~complete).sum()),
        counted_events=counted,
    )
    return out, stats


def _counts_at_window_end(seg, last, rows, live, room_starts, window):
    """(N, W, len(COUNT_FEATURES)) int32 counts known at each window's end, and the number
    of (event, window) pairs counted."""
    counts = np.zeros((len(last), window, len(COUNT_FEATURES)), np.int32)
    if len(last) == 0 or live.num_rows == 0:
        return counts, 0
    kind = pc.fill_null(pc.index_in(live.column("event_type"), pa.array(COUNT_FEATURES)), -1)
    kind = kind.to_numpy(zero_copy_only=False).astype(np.int64)
    ev_room = live.column("item_id").to_numpy()
    starts = pd.Series(
        room_starts.column("start_ms").to_numpy(), index=room_starts.column("item_id").to_numpy()
    )
    start = starts.reindex(ev_room).to_numpy()
    keep = (kind >= 0) & ~np.isnan(start)
    sel = np.flatnonzero(keep)
    start = start[sel].astype(np.int64)
    ev_room, kind = ev_room[sel], kind[sel]
    ev_time = live.column("event_time_ms").to_numpy()[sel]
    ev_report = live.column("report_time_ms").to_numpy()[sel]
    s = (ev_time - start) // S.SEGMENT_MS  # the event's segment (negative: before the start)
    # the window ending at segment t sees the event once t's end >= its report time
    first_t = np.maximum(s, -(-(ev_report - start) // S.SEGMENT_MS) - 1)
    windows = pd.MultiIndex.from_arrays(
        [seg.column("room_id").to_numpy()[last], seg.column("segment_index").to_numpy()[last]]
    )
    total = 0
    for k in range(window):  # the event's segment is k segments before the window's last
        t = s + k
        at = windows.get_indexer(pd.MultiIndex.from_arrays([ev_room, t]))
        valid = (at >= 0) & (t >= first_t) & (s >= 0)
        np.add.at(counts, (at[valid], window - 1 - k, kind[valid]), 1)
        total += int(valid.sum())
    return counts, total


def _window_table(seg, last, rows, counts, window) -> pa.Table:
    n_win = len(last)

    def vectors(name: str) -> np.ndarray:
        col = seg.column(name).combine_chunks()
        width = col.type.list_size
        flat = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
        return flat[rows].reshape(n_win, window * width), width

    visual, _ = vectors("visual")
    asr, fa = vectors("asr")
    comment, fc = vectors("comment")
    text = np.concatenate(
        [asr.reshape(n_win, window, fa), comment.reshape(n_win, window, fc)], axis=2
    ).reshape(n_win, window * (fa + fc))
    shows = seg.column("shows").to_numpy()[rows].astype(np.int32)
    enters = seg.column("enters").to_numpy()[rows].astype(np.int32)
    ctr = np.where(shows > 0, enters / np.maximum(shows, 1), 0.0).astype(np.float32)

    def fixed(values: np.ndarray, type_) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(
            pa.array(values.reshape(-1), type_), values.shape[1]
        )

    return pa.table(
        {
            "room_id": seg.column("room_id").take(pa.array(last)),
            "author_id": seg.column("author_id").take(pa.array(last)),
            "end_segment_index": seg.column("segment_index").take(pa.array(last)),
            "end_ms": seg.column("segment_end_ms").take(pa.array(last)),
            "visual": fixed(visual, pa.float32()),
            "text": fixed(text, pa.float32()),
            "shows": fixed(shows, pa.int32()),
            "enters": fixed(enters, pa.int32()),
            "ctr": fixed(ctr, pa.float32()),
            "counts": fixed(counts.reshape(n_win, window * len(COUNT_FEATURES)), pa.int32()),
        }
    )
