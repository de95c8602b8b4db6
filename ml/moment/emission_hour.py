"""One emission hour of the Moment side: exposures with features, the three label
streams, and final outcomes — from a look-back window of raw live/short-video events.

An exposure is *in scope* when its impression was reported at most ``LATE_IMPRESSION_HOURS``
after the hour of t0 began; later ones cannot be featurised or labelled from the
look-back and are counted (``beyond_lookback``), never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml.hours import HOUR_MS
from ml.moment.features import exposure_features
from ml.moment.labels import fast_samples, moment_samples, outcomes, slow_samples
from ml.moment.sessions import TASKS, build_timeline, dedup_events
from ml.moment.user_activity import ActivityBefore

LATE_IMPRESSION_HOURS = 3
# Raw partitions an hour reads: H - LOOKBACK_HOURS .. H (features need 1 h before t0).
LOOKBACK_HOURS = LATE_IMPRESSION_HOURS + 1
# live_outcomes[H] reads H - LATE_IMPRESSION_HOURS .. H + OUTCOME_LOOKAHEAD_HOURS: a late
# impression's follow-ups may precede it, and attribution reaches 2 h after t0.
OUTCOME_LOOKAHEAD_HOURS = 3


@dataclass
class LabelHour:
    exposures: pa.Table
    moment: pa.Table
    fast: pa.Table
    slow: pa.Table
    impressions_reported: int  # impressions reported in the hour
    beyond_lookback: int  # of those, reported too late to be in scope
    stats: dict = field(default_factory=dict)

    def conserved(self) -> bool:
        return self.impressions_reported == self.exposures.num_rows + self.beyond_lookback


def in_scope(tl: pa.Table) -> np.ndarray:
    t0 = tl.column("t0_ms").to_numpy()
    rep = tl.column("impression_report_ms").to_numpy()
    return t0 >= rep - rep % HOUR_MS - LATE_IMPRESSION_HOURS * HOUR_MS


def activity_since(hour_ms: int) -> int:
    """The hour boundary the exposures of H take users' activity counters from: the
    earliest t0 an in-scope exposure reported in H can have (the start of raw
    H - LATE_IMPRESSION_HOURS), so ``user_activity[H - LOOKBACK_HOURS]`` (everything
    reported before it) plus the look-back window give the counters at any t0."""
    return hour_ms - LATE_IMPRESSION_HOURS * HOUR_MS


def label_hour(
    live: pa.Table, sv: pa.Table, hour_ms: int, activity: ActivityBefore | None = None
) -> LabelHour:
    """``live``/``sv``: raw clean events of partitions H - LOOKBACK_HOURS .. H;
    ``activity``: users' counters before ``activity_since(hour_ms)`` (None: there was no
    activity before the window, e.g. in the first hours of the data)."""
    live = dedup_events(live)
    tl = build_timeline(live)
    scope = in_scope(tl)
    rep = tl.column("impression_report_ms").to_numpy()
    in_hour = (rep >= hour_ms) & (rep < hour_ms + HOUR_MS)
    if activity is not None and activity.since_ms != activity_since(hour_ms):
        raise ValueError(
            f"activity snapshot at {activity.since_ms}, expected {activity_since(hour_ms)}"
        )
    exposures = exposure_features(tl.filter(pa.array(in_hour & scope)), live, sv, activity)
    scoped = tl.filter(pa.array(scope))
    lo, hi = hour_ms, hour_ms + HOUR_MS
    res = LabelHour(
        exposures=exposures,
        moment=moment_samples(scoped, lo, hi),
        fast=fast_samples(scoped, lo, hi),
        slow=slow_samples(scoped, lo, hi),
        impressions_reported=int(in_hour.sum()),
        beyond_lookback=int((in_hour & ~scope).sum()),
    )
    res.stats = stream_stats(res)
    return res


def stream_stats(res: LabelHour) -> dict:
    """Label rates per task and volumes, for metadata and the drift/band checks."""
    out = {
        "exposures": res.exposures.num_rows,
        "moment_samples": res.moment.num_rows,
        "fast_samples": res.fast.num_rows,
        "slow_samples": res.slow.num_rows,
        "beyond_lookback": res.beyond_lookback,
    }
    for name, t in (("fast", res.fast), ("moment", res.moment), ("slow", res.slow)):
        for task in TASKS:
            m = t.column(f"m_{task}")
            labelled = pc.sum(m).as_py() or 0
            pos = pc.sum(pc.and_(m, pc.equal(t.column(f"y_{task}"), 1))).as_py() or 0
            out[f"{name}_{task}_labels"] = labelled
            out[f"{name}_{task}_rate"] = pos / labelled if labelled else 0.0
    return out


def outcome_hour(live: pa.Table, hour_ms: int) -> tuple[pa.Table, int]:
    """Final labels of the in-scope exposures reported in H, from raw
    H - LATE_IMPRESSION_HOURS .. H + OUTCOME_LOOKAHEAD_HOURS.
    Returns (outcomes, impressions beyond the look-back)."""
    tl = build_timeline(dedup_events(live))
    rep = tl.column("impression_report_ms").to_numpy()
    in_hour = (rep >= hour_ms) & (rep < hour_ms + HOUR_MS)
    scope = in_scope(tl)
    return outcomes(tl.filter(pa.array(in_hour & scope))), int((in_hour & ~scope).sum())
