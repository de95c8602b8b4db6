"""Per-user activity so far: lifetime counters of live impressions and enters and
short-video plays and long views, by report time — the "activity so far" user aggregates
of ``live_exposures``.

``user_activity[H]`` holds every user's counts of events reported before the end of H:
``user_activity[H-1]`` plus the counts of raw partition H (one small sorted table, an
outer add; no per-user Python). An exposure's counter at t0 is then the state at some
hour boundary ``since <= t0`` plus the user's events reported in ``[since, t0)``, which
the exposure's own look-back window holds — never an event reported at or after t0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml import schema as S

# counter -> the exposure feature it feeds
COUNTERS = {
    "live_imp": "user_live_imp_total",
    "live_enter": "user_live_enter_total",
    "sv_play": "user_sv_play_total",
    "sv_long_view": "user_sv_long_view_total",
}
ACTIVITY_SCHEMA = pa.schema([("user_id", pa.int64()), *[(c, pa.int64()) for c in COUNTERS]])
ACTIVITY_LIVE_COLUMNS = ["event_type", "user_id"]
ACTIVITY_SV_COLUMNS = ["event_type", "user_id", "watch_ms", "duration_ms"]
SV_LONG_VIEW_RATIO = S.SV_LONG_VIEW_RATIO


def counter_rows(live: dict[str, np.ndarray], sv: dict[str, np.ndarray]) -> dict[str, tuple]:
    """counter -> (which source, bool mask of its rows): the one definition of what each
    counter counts, shared by the hourly counts and the exposure features. ``live`` needs
    event_type (codes); ``sv`` event_type, watch_ms, duration_ms."""
    play = sv["event_type"] == S.TYPE_CODE["play"]
    long_view = play & (sv["watch_ms"] >= SV_LONG_VIEW_RATIO * np.maximum(sv["duration_ms"], 1))
    return {
        "live_imp": ("live", live["event_type"] == S.TYPE_CODE["impression"]),
        "live_enter": ("live", live["event_type"] == S.TYPE_CODE["enter"]),
        "sv_play": ("sv", play),
        "sv_long_view": ("sv", long_view),
    }


def numpy_columns(events: pa.Table, names: list[str]) -> dict[str, np.ndarray]:
    """numpy columns (nulls as 0; event_type as codes): masks on numpy are far cheaper
    than filtering tables."""
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


def hour_counts(live_events: pa.Table, sv_events: pa.Table) -> pa.Table:
    """Per user (sorted) the counters of one partition's clean events."""
    live = numpy_columns(live_events, ACTIVITY_LIVE_COLUMNS)
    sv = numpy_columns(sv_events, ACTIVITY_SV_COLUMNS)
    sources = {"live": live, "sv": sv}
    rows = counter_rows(live, sv)
    users = np.unique(np.concatenate([live["user_id"], sv["user_id"]]))
    cols = {"user_id": users}
    for name, (src, mask) in rows.items():
        idx = np.searchsorted(users, sources[src]["user_id"][mask])
        cols[name] = np.bincount(idx, minlength=len(users)).astype(np.int64)
    return _drop_zero_rows(pa.table(cols, schema=ACTIVITY_SCHEMA))


def _drop_zero_rows(table: pa.Table) -> pa.Table:
    """Users with no counted event (e.g. only likes) are not stored: absent means zero."""
    any_ = np.zeros(table.num_rows, bool)
    for c in COUNTERS:
        any_ |= table.column(c).to_numpy() > 0
    return table if any_.all() else table.filter(pa.array(any_))


def accumulate(previous: pa.Table | None, hour: pa.Table) -> pa.Table:
    """previous + hour, per user (both sorted by user_id; the result is too)."""
    if previous is None or previous.num_rows == 0:
        return hour.cast(ACTIVITY_SCHEMA)
    pu, hu = previous.column("user_id").to_numpy(), hour.column("user_id").to_numpy()
    users = np.union1d(pu, hu)
    ip, ih = np.searchsorted(users, pu), np.searchsorted(users, hu)
    cols = {"user_id": users}
    for c in COUNTERS:
        total = np.zeros(len(users), np.int64)
        total[ip] += previous.column(c).to_numpy()
        total[ih] += hour.column(c).to_numpy()
        cols[c] = total
    return pa.table(cols, schema=ACTIVITY_SCHEMA)


@dataclass(frozen=True)
class ActivityBefore:
    """Every user's counters over the events reported before ``since_ms`` (an hour
    boundary); ``table`` None: nothing was reported before (the start of the data)."""

    since_ms: int
    table: pa.Table | None = None

    def lookup(self, users: np.ndarray) -> dict[str, np.ndarray]:
        """counter -> int64 count per user in ``users`` (0 when absent)."""
        if self.table is None or self.table.num_rows == 0:
            return {c: np.zeros(len(users), np.int64) for c in COUNTERS}
        known = self.table.column("user_id").to_numpy()
        at = np.minimum(np.searchsorted(known, users), len(known) - 1)
        hit = known[at] == users
        return {c: np.where(hit, self.table.column(c).to_numpy()[at], 0) for c in COUNTERS}


def totals_by_user(table: pa.Table) -> dict[str, int]:
    """Sum of each counter (conservation checks)."""
    return {c: int(table.column(c).to_numpy().sum()) for c in COUNTERS}


def conservation_stats(now: pa.Table, before: pa.Table | None, hour: pa.Table) -> dict[str, int]:
    """Problems of activity[H] against activity[H-1] and the recounted raw H: counts of
    users whose counters differ from previous + hour, users missing or extra, counters
    that decreased, duplicated or unsorted users. All zero when it accumulates exactly."""
    expected = accumulate(before, hour)
    u_now, u_exp = now.column("user_id").to_numpy(), expected.column("user_id").to_numpy()
    common, i_now, i_exp = np.intersect1d(u_now, u_exp, assume_unique=False, return_indices=True)
    differing = np.zeros(len(common), bool)
    for c in COUNTERS:
        differing |= now.column(c).to_numpy()[i_now] != expected.column(c).to_numpy()[i_exp]
    decreased = 0
    if before is not None and before.num_rows:
        prior = ActivityBefore(0, before).lookup(u_now)
        for c in COUNTERS:
            decreased += int((now.column(c).to_numpy() < prior[c]).sum())
    return {
        "users_differing": int(differing.sum()),
        "users_missing": int(len(u_exp) - len(common)),
        "users_extra": len(np.setdiff1d(u_now, u_exp)),
        "counters_decreased": decreased,
        "duplicate_or_unsorted_users": int((np.diff(u_now) <= 0).sum()),
    }
