"""Data-quality rules of the content stage: live segments."""

from __future__ import annotations

from ml.quality.runner import Expect

MIN_SHOWN_SEGMENT_SHARE = 0.02  # fewer segments with any show: the join to impressions broke


def segment_expectations() -> list[Expect]:
    return [
        Expect(
            "ExpectColumnValuesToBeBetween", {"column": "ctr", "min_value": 0.0, "max_value": 1.0}
        ),
        Expect(
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": "shows", "column_B": "enters", "or_equal": True},
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "shown_share", "min_value": MIN_SHOWN_SEGMENT_SHARE, "max_value": 1.0},
        ),
    ]
