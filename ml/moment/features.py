"""Features of a live exposure as of its impression time t0 (never later).

Real-time room statistics: how many impressions, enters, likes, comments and gifts the
room received in the last 30 s and the last 5 min, and the derived CTR, as a real-time
feature service would serve them at t0 when it refreshes every F (its freshness):
the snapshot taken at the last refresh tick ``floor(t0 / F) * F``, counting events the
log system had *received* in the window ending at that tick (processing-time windows:
report time in (tick - W, tick]). F = 30 s is Moment's stream, F = 5 min the classic one.

User aggregates: the user's live impressions / enters and short-video plays / long views
reported in the hour before t0 (report time in [t0 - 1 h, t0)) and so far (``*_total``:
every such event reported before t0, from ``ml.moment.user_activity``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml import schema as S
from ml.moment.timeindex import KeyTimeIndex, time_span
from ml.moment.user_activity import COUNTERS, ActivityBefore, counter_rows, numpy_columns

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

ROOM_FEATURES = [f"room_{c}_{w}_{f}" for f in FRESHNESS for w in WINDOWS for c in ROOM_COUNTERS] + [
    f"room_ctr_{w}_{f}" for f in FRESHNESS for w in WINDOWS
]
USER_FEATURES = [f"user_{c}_1h" for c in COUNTERS] + list(COUNTERS.values())

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
        *[(n, pa.int32() if n.endswith("_1h") else pa.int64()) for n in USER_FEATURES],
    ]
)


def margin_ms() -> int:
    """How far before t0 any feature window reaches."""
    return max(USER_WINDOW_MS, max(WINDOWS.values()) + max(FRESHNESS.values())) + 1


def _select(cols: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in cols.items()}


def tick(t0: np.ndarray, freshness_ms: int) -> np.ndarray:
    """The last refresh of a feature service refreshing every ``freshness_ms``, at or before t0."""
    return t0 - t0 % freshness_ms


def exposure_features(
    exposures: pa.Table,
    live_events: pa.Table,
    sv_events: pa.Table,
    activity: ActivityBefore | None = None,
) -> pa.Table:
    """One row per exposure (a timeline slice: exposure_id, user_id, room_id, author_id,
    page, t0_ms, impression_report_ms) with its features as of t0.

    ``live_events`` / ``sv_events`` must cover report times from an hour before the
    earliest t0 (and from ``activity.since_ms``) up to the latest t0 (the caller's
    look-back). ``activity``: the users' counters before ``since_ms <= every t0``; None
    means the events given are all there ever was (counted from the first)."""
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

    live = numpy_columns(live_events, ["event_type", "item_id", "user_id", "report_time_ms"])
    sv = numpy_columns(sv_events, SV_COLUMNS)
    since = None if activity is None else activity.since_ms
    if since is not None and len(t0) and int(t0.min()) < since:
        raise ValueError(
            f"an exposure at t0={int(t0.min())} precedes the activity snapshot at {since}: "
            "its counters would include events reported after t0"
        )
    if len(t0):
        # Only events that can fall in some exposure's windows (reported from the earliest
        # window start to the latest t0) and, for user aggregates, of exposed users.
        lo, hi = int(t0.min()) - margin_ms(), int(t0.max())
        # "so far": events from the snapshot on, or every event given when there is none
        lo = np.iinfo(np.int64).min if since is None else min(lo, since)
        live = _select(live, (live["report_time_ms"] >= lo) & (live["report_time_ms"] <= hi))
        keep = (sv["report_time_ms"] >= lo) & (sv["report_time_ms"] <= hi)
        keep[keep] = pc.is_in(
            pa.array(sv["user_id"][keep]), value_set=pa.array(np.unique(users))
        ).to_numpy(zero_copy_only=False)
        sv = _select(sv, keep)
    l_type, l_room, l_rep = (live[c] for c in ("event_type", "item_id", "report_time_ms"))
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

    # [t0 - 1 h, t0): the count of (t0 - 1h - 1, t0 - 1] in integer milliseconds; so far:
    # the snapshot before ``since`` plus (since - 1, t0 - 1].
    lo_u, hi_u = t0 - USER_WINDOW_MS - 1, t0 - 1
    lo_total = np.full(len(t0), (base if since is None else since) - 1, np.int64)
    prior = (activity or ActivityBefore(0)).lookup(users)
    sources = {"live": live, "sv": sv}
    for counter, (src, sel) in counter_rows(live, sv).items():
        rows = sources[src]
        index = KeyTimeIndex(
            rows["user_id"][sel],
            rows["report_time_ms"][sel],
            query_keys=users,
            base=base,
            span=span,
            query_times=t0,
        )
        cols[f"user_{counter}_1h"] = index.count_in(lo_u, hi_u).astype(np.int32)
        cols[COUNTERS[counter]] = prior[counter] + index.count_in(lo_total, hi_u)
    return pa.table(cols, schema=EXPOSURE_SCHEMA)
