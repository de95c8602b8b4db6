"""The compiled row validation gives exactly the codes of the Arrow-expression reference."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from ml import schema as S
from ml.hours import HOUR_MS
from ml.ingest.validate import validate_events, validate_reference
from tests.landing_helpers import H0

DAY = 24 * HOUR_MS
times = st.one_of(
    st.none(),
    st.integers(H0 - 9 * DAY, H0 + 2 * HOUR_MS),
    st.integers(H0, H0 + HOUR_MS),
    st.sampled_from([H0, H0 + HOUR_MS - 1, H0 + HOUR_MS, 0, -(2**63), 2**63 - 1]),
)
values = st.one_of(st.none(), st.integers(-5, S.MAX_DURATION_MS + 2), st.sampled_from(
    [S.MAX_WATCH_MS, S.MAX_WATCH_MS + 1, 2**63 - 1]))  # fmt: skip
gifts = st.one_of(st.none(), st.floats(), st.sampled_from([S.MAX_GIFT_VALUE, -0.0, float("nan")]))
# Each field: mostly a valid value, sometimes a null or an edge case, so that rows reach
# every rule (a row is judged by the first rule it breaks).
fields = {
    "event_id": st.sampled_from(["e1", "e2", "", None]),
    "event_type": st.sampled_from([*S.ALL_EVENT_TYPES, "", "teleport", "Play", "gif", None]),
    "user_id": st.sampled_from([1, None]),
    "item_id": st.sampled_from([1, 2, 3, None]),
    "author_id": st.sampled_from([7, None]),
    "event_time_ms": times,
    "report_time_ms": times,
    "page": st.sampled_from(["feed", None]),
    "watch_ms": values,
    "duration_ms": values,
    "gift_value": gifts,
}
VALID = {"event_id": "e0", "event_type": "like", "user_id": 1, "item_id": 1, "author_id": 7,
         "event_time_ms": H0 + 5, "report_time_ms": H0 + 10, "page": "feed", "watch_ms": 5,
         "duration_ms": 9, "gift_value": 1.5}  # fmt: skip
# Event time relative to report time, at the edges of the delay and skew rules.
delays = st.sampled_from(
    [0, -1, S.CLOCK_SKEW_MS, S.CLOCK_SKEW_MS + 1, -S.MAX_REPORT_DELAY_MS,
     -S.MAX_REPORT_DELAY_MS - 1]
)  # fmt: skip


@st.composite
def row(draw) -> dict:
    r = {k: draw(fields[k]) if draw(st.integers(0, 5)) == 0 else v for k, v in VALID.items()}
    if draw(st.integers(0, 3)) == 0:  # a type with required fields, one of them perhaps absent
        r["event_type"] = draw(st.sampled_from(["exit", "gift", "play"]))
        r[draw(st.sampled_from(["watch_ms", "duration_ms", "gift_value"]))] = None
    if r["report_time_ms"] is not None and draw(st.booleans()):
        r["event_time_ms"] = r["report_time_ms"] + draw(delays)
        if not -(2**63) <= r["event_time_ms"] < 2**63:
            r["event_time_ms"] = None
    return r


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(row(), max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=3),
    offset=st.integers(0, 3),
    domain=st.sampled_from(S.DOMAINS),
    known=st.booleans(),
)
def test_codes_match_reference(rows, cuts, offset, domain, known):
    table = pa.Table.from_pylist(rows, schema=S.RAW_EVENT_SCHEMA).slice(offset)
    bounds = sorted({0, table.num_rows, *(min(c, table.num_rows) for c in cuts)})
    parts = [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]
    table = pa.concat_tables(parts or [table])  # several batches, some sliced
    items = pa.array([1, 2], pa.int64()) if known else None
    got = validate_events(table, domain, H0, items)
    assert np.array_equal(got, validate_reference(table, domain, H0, items))
