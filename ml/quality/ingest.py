"""Data-quality suites of ingestion: the clean raw-events tables."""

from __future__ import annotations

from ml import schema as S
from ml.hours import HOUR_MS
from ml.quality.runner import Expect


def raw_events_suite(domain: str, hour_ms: int) -> list[Expect]:
    """Schema, types, enums and ranges of a clean raw-events partition."""
    hour_end = hour_ms + HOUR_MS - 1
    e = [
        Expect("ExpectTableColumnsToMatchOrderedList", {"column_list": S.CLEAN_EVENT_SCHEMA.names}),
        Expect("ExpectColumnValuesToBeUnique", {"column": "event_id"}),
        Expect(
            "ExpectColumnValuesToBeInSet",
            {"column": "event_type", "value_set": list(S.EVENT_TYPES[domain])},
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "report_time_ms", "min_value": hour_ms, "max_value": hour_end},
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {
                "column": "event_time_ms",
                "min_value": hour_ms - S.MAX_REPORT_DELAY_MS,
                "max_value": hour_end + S.CLOCK_SKEW_MS,
            },
        ),
        Expect(
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {
                "column_A": "report_time_ms",
                "column_B": "event_time_ms",
                "or_equal": True,
                "mostly": 0.999,
            },
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "watch_ms", "min_value": 0, "max_value": S.MAX_WATCH_MS},
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "gift_value", "min_value": 0, "max_value": S.MAX_GIFT_VALUE},
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "duration_ms", "min_value": 0, "max_value": S.MAX_DURATION_MS},
        ),
    ]
    for col in S.ID_FIELDS:
        e.append(Expect("ExpectColumnValuesToNotBeNull", {"column": col}))
    for col in ("user_id", "item_id", "author_id", "event_time_ms", "report_time_ms"):
        e.append(Expect("ExpectColumnValuesToBeOfType", {"column": col, "type_": "int64"}))
    return e
