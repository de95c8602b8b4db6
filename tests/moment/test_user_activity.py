"""Activity so far: the lifetime user counters, exact on hand-built events, additive hour
over hour, and the snapshot + look-back composition equal to counting from the start."""

import numpy as np
import pyarrow as pa
import pytest

from ml import schema as S
from ml.moment.features import exposure_features
from ml.moment.sessions import build_timeline, dedup_events
from ml.moment.user_activity import (
    COUNTERS,
    ActivityBefore,
    accumulate,
    conservation_stats,
    hour_counts,
)
from tests.landing_helpers import H0, ROOM

HOUR = 3_600_000


def ev(eid, etype, rep, user=1, room=ROOM, **kw):
    row = {f.name: None for f in S.RAW_EVENT_SCHEMA}
    row.update(event_id=eid, event_type=etype, user_id=user, item_id=room, author_id=7,
               event_time_ms=rep - 200, report_time_ms=rep, page="feed")  # fmt: skip
    row.update(kw)
    return row


def table(rows):
    return pa.Table.from_pylist(rows, schema=S.RAW_EVENT_SCHEMA)


LIVE = [
    ev("a", "impression", H0 + 10_000),
    ev("b", "enter", H0 + 12_000),
    ev("c", "impression", H0 + 2 * HOUR - 5, user=2),
    ev("d", "like", H0 + 2 * HOUR + 1_000),  # not a counter
    ev("x", "impression", H0 + 2 * HOUR + 60_000),  # the exposure; reported at its t0
]
SV = [
    ev("p1", "play", H0 + 20_000, watch_ms=40_000, duration_ms=60_000),  # long view
    ev("p2", "play", H0 + HOUR + 1, watch_ms=10_000, duration_ms=60_000),
    ev("p3", "play", H0 + 2 * HOUR + 30_000, watch_ms=50_000, duration_ms=50_000),
    ev("p4", "play", H0 + 2 * HOUR + 60_000, watch_ms=50_000, duration_ms=50_000),  # at t0
    ev("p5", "play", H0 + 3 * HOUR, user=2, watch_ms=1, duration_ms=50_000),
]


def exposure(t0_offset=2 * HOUR + 60_000):
    tl = build_timeline(dedup_events(table(LIVE)))
    return tl.filter(pa.compute.equal(tl.column("exposure_id"), "x")).set_column(
        tl.schema.get_field_index("t0_ms"), "t0_ms", pa.array([H0 + t0_offset], pa.int64())
    )


def totals(features):
    return {c: features.column(c)[0].as_py() for c in COUNTERS.values()}


def in_hours(rows, lo, hi):
    return [r for r in rows if lo <= r["report_time_ms"] < hi]


def test_counts_every_event_reported_before_t0_and_nothing_at_or_after():
    got = totals(exposure_features(exposure(), table(LIVE), table(SV)))
    assert got == {
        "user_live_imp_total": 1,  # a (x itself is reported at t0)
        "user_live_enter_total": 1,
        "user_sv_play_total": 3,  # p1, p2, p3 (p4 at t0)
        "user_sv_long_view_total": 2,  # p1, p3
    }


def test_snapshot_plus_lookback_equals_counting_from_the_start():
    since = H0 + 2 * HOUR
    before = accumulate(
        hour_counts(table(in_hours(LIVE, H0, H0 + HOUR)), table(in_hours(SV, H0, H0 + HOUR))),
        hour_counts(table(in_hours(LIVE, H0 + HOUR, since)), table(in_hours(SV, H0 + HOUR, since))),
    )
    # the window holds only what was reported from the snapshot on
    window_live, window_sv = (
        in_hours(LIVE, since, H0 + 9 * HOUR),
        in_hours(SV, since, H0 + 9 * HOUR),
    )
    got = exposure_features(
        exposure(), table(window_live), table(window_sv), ActivityBefore(since, before)
    )
    assert totals(got) == totals(exposure_features(exposure(), table(LIVE), table(SV)))


def test_an_exposure_before_the_snapshot_is_refused():
    with pytest.raises(ValueError, match="precedes the activity snapshot"):
        exposure_features(
            exposure(t0_offset=HOUR), table(LIVE), table(SV), ActivityBefore(H0 + 2 * HOUR)
        )


def test_hour_counts_and_accumulate_are_exact_and_conserve():
    h1 = hour_counts(table(in_hours(LIVE, H0, H0 + HOUR)), table(in_hours(SV, H0, H0 + HOUR)))
    assert h1.to_pylist() == [
        {"user_id": 1, "live_imp": 1, "live_enter": 1, "sv_play": 1, "sv_long_view": 1}
    ]
    rng = np.random.default_rng(0)

    def random_counts(n):
        users = np.unique(rng.integers(0, 50, n))
        cols = {"user_id": users} | {c: rng.integers(0, 5, len(users)) for c in COUNTERS}
        return pa.table(cols).cast(accumulate(None, h1).schema)

    a, b, c = random_counts(30), random_counts(30), random_counts(30)
    left, right = accumulate(accumulate(a, b), c), accumulate(a, accumulate(b, c))
    assert left.equals(right)
    for name in COUNTERS:
        total = sum(t.column(name).to_numpy().sum() for t in (a, b, c))
        assert left.column(name).to_numpy().sum() == total
    assert set(conservation_stats(left, accumulate(a, b), c).values()) == {0}
    broken = left.set_column(1, "live_imp", pa.compute.subtract(left.column("live_imp"), 1))
    stats = conservation_stats(broken, accumulate(a, b), c)
    assert stats["users_differing"] > 0 and stats["counters_decreased"] > 0
    assert conservation_stats(left.slice(1), accumulate(a, b), c)["users_missing"] == 1
