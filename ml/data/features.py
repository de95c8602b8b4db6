"""Features of a live exposure as of its impression time t0 (never later).

Real-time room statistics: how many impressions, enters, likes, comments and gifts the
room received in the last 30 s and the last 5 min, and the derived CTR, as a real-time
feature service would serve them at t0 when it refreshes every F (its freshness):
the snapshot taken at the last refresh tick ``floor(t0 / F) * F``, counting events the
log system had *received* in the window ending at that tick (processing-time windows:
report time in (tick - W, tick]). F = 30 s is Moment's stream, F = 5 min the classic one.

User aggregates: the user's live impressions / enters and short-video plays / long views
reported in the hour before t0 (report time in [t0 - 1 h, t0)).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml import schema as S
from ml.data.timeindex import KeyTimeIndex, time_span

ROOM_COUNTERS = {
    "imp": "impression",
    "enter": "enter",
    "like": "like",
    "comment": "comment",
    "gift": "gift",
}
WINDOWS = {"30s": 30_000, "5m": 300_000}
FRESHNESS = {"f30s": 30_000, "f5m": 300_000}
USER_WINDOW_MS = 3_600_000
# The short-video columns the user aggregates read (read only these from the lake).
SV_COLUMNS = ["event_type", "user_id", "report_time_ms", "watch_ms", "duration_ms"]
SV_LONG_VIEW_RATIO = 0.5  # a short-video play of at least half the video is a long view

ROOM_FEATURES = [f"room_{c}_{w}_{f}" for f in FRESHNESS for w in WINDOWS for c in ROOM_COUNTERS] + [
    f"room_ctr_{w}_{f}" for f in FRESHNESS for w in WINDOWS
]
USER_FEATURES = [
    "user_live_imp_1h",
    "user_live_enter_1h",
    "user_sv_play_1h",
    "user_sv_long_view_1h",
]

EXPOSURE_SCHEMA = pa.schema(
    [
        ("exposure_id", pa.string()),
        ("user_id", pa.int64()),
        ("room_id", pa.int64()),
        ("author_id", pa.int64()),
        ("page", pa.string()),
        ("t0_ms", pa.int64()),
        ("impression_report_ms", pa.int64()),
        ("hour_of_day", pa.int8()),
        ("day_of_week", pa.int8()),
        *[(n, pa.float32() if "_ctr_" in n else pa.int32()) for n in ROOM_FEATURES],
        *[(n, pa.int32()) for n in USER_FEATURES],
    ]
)


def margin_ms() -> int:
    """How far before t0 any feature window reaches."""
    return max(USER_WINDOW_MS, max(WINDOWS.values()) + max(FRESHNESS.values())) + 1


def _columns(events: pa.Table, names: list[str]) -> dict[str, np.ndarray]:
    """numpy columns (nulls as 0): masks on numpy are far cheaper than filtering tables."""
    out = {}
    for n in names:
        c = events.column(n)
        if n == "event_type":
            out[n] = S.event_type_codes(c)
            continue
        if c.null_count:
            c = pc.fill_null(c, 0)
        out[n] = c.to_numpy(zero_copy_only=False)
    return out


def _select(cols: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in cols.items()}


def tick(t0: np.ndarray, freshness_ms: int) -> np.ndarray:
    """The last refresh of a feature service refreshing every ``freshness_ms``, at or before t0."""
    return t0 - t0 % freshness_ms


def exposure_features(exposures: pa.Table, live_events: pa.Table, sv_events: pa.Table) -> pa.Table:
    """One row per exposure (a timeline slice: exposure_id, user_id, room_id, author_id,
    page, t0_ms, impression_report_ms) with its features as of t0.

    ``live_events`` / ``sv_events`` must cover report times from an hour before the
    earliest t0 up to the latest t0 (the caller's look-back)."""
    t0 = exposures.column("t0_ms").to_numpy()
    rooms = exposures.column("room_id").to_numpy()
    users = exposures.column("user_id").to_numpy()
    cols: dict[str, object] = {
        name: exposures.column(name)
        for name in (
            "exposure_id",
            "user_id",
            "room_id",
            "author_id",
            "page",
            "t0_ms",
            "impression_report_ms",
        )
    }
    secs = t0 // 1000
    cols["hour_of_day"] = ((secs // 3600) % 24).astype(np.int8)
    cols["day_of_week"] = (((secs // 86400) + 3) % 7).astype(np.int8)  # 1970-01-01 was a Thursday

    live = _columns(live_events, ["event_type", "item_id", "user_id", "report_time_ms"])
    sv = _columns(sv_events, SV_COLUMNS)
    if len(t0):
        # Only events that can fall in some exposure's windows (reported from the earliest
        # window start to the latest t0) and, for user aggregates, of exposed users.
        lo, hi = int(t0.min()) - margin_ms(), int(t0.max())
        live = _select(live, (live["report_time_ms"] >= lo) & (live["report_time_ms"] <= hi))
        keep = (sv["report_time_ms"] >= lo) & (sv["report_time_ms"] <= hi)
        keep[keep] = pc.is_in(
            pa.array(sv["user_id"][keep]), value_set=pa.array(np.unique(users))
        ).to_numpy(zero_copy_only=False)
        sv = _select(sv, keep)
    l_type, l_room, l_user, l_rep = (
        live[c] for c in ("event_type", "item_id", "user_id", "report_time_ms")
    )
    base, span = time_span(t0, l_rep, sv["report_time_ms"], margin=margin_ms())

    for short, etype in ROOM_COUNTERS.items():
        sel = l_type == S.TYPE_CODE[etype]
        index = KeyTimeIndex(
            l_room[sel], l_rep[sel], query_keys=rooms, base=base, span=span, query_times=t0
        )
        for f, f_ms in FRESHNESS.items():
            at = np.minimum(tick(t0, f_ms), t0 - 1)  # strictly before t0
            for w, w_ms in WINDOWS.items():
                cols[f"room_{short}_{w}_{f}"] = index.count_in(at - w_ms, at).astype(np.int32)
    for f in FRESHNESS:
        for w in WINDOWS:
            imp, ent = cols[f"room_imp_{w}_{f}"], cols[f"room_enter_{w}_{f}"]
            cols[f"room_ctr_{w}_{f}"] = np.where(imp > 0, ent / np.maximum(imp, 1), 0.0).astype(
                np.float32
            )

    # [t0 - 1 h, t0): the count of (t0 - 1h - 1, t0 - 1] in integer milliseconds.
    lo_u, hi_u = t0 - USER_WINDOW_MS - 1, t0 - 1
    for name, etype in (("user_live_imp_1h", "impression"), ("user_live_enter_1h", "enter")):
        sel = l_type == S.TYPE_CODE[etype]
        index = KeyTimeIndex(
            l_user[sel], l_rep[sel], query_keys=users, base=base, span=span, query_times=t0
        )
        cols[name] = index.count_in(lo_u, hi_u).astype(np.int32)
    play = sv["event_type"] == S.TYPE_CODE["play"]
    long_view = play & (sv["watch_ms"] >= SV_LONG_VIEW_RATIO * np.maximum(sv["duration_ms"], 1))
    for name, sel in (("user_sv_play_1h", play), ("user_sv_long_view_1h", long_view)):
        index = KeyTimeIndex(
            sv["user_id"][sel],
            sv["report_time_ms"][sel],
            query_keys=users,
            base=base,
            span=span,
            query_times=t0,
        )
        cols[name] = index.count_in(lo_u, hi_u).astype(np.int32)
    return pa.table(cols, schema=EXPOSURE_SCHEMA)
