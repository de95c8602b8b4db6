"""Data-quality rules of the content stage: live segments."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml.quality.runner import Expect, rate_expectation

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


# The figures of vector_figures; every one must be 0 in a published partition.
VECTOR_FIGURES = ("null_vectors", "wrong_width_vectors", "null_values", "non_finite_values")


def vector_figures(table: pa.Table, schema: pa.Schema) -> dict[str, int]:
    """Counts, over the vector columns of ``schema`` as read back from the lake, of what a
    published segment must never hold (recounted here, apart from the build's own rules)."""
    figures = dict.fromkeys(VECTOR_FIGURES, 0)
    for f in schema:
        if not pa.types.is_fixed_size_list(f.type) or f.name not in table.column_names:
            continue
        col = table.column(f.name)
        figures["null_vectors"] += col.null_count
        if not (pa.types.is_fixed_size_list(col.type) and col.type.list_size == f.type.list_size):
            figures["wrong_width_vectors"] += len(col) - col.null_count
            continue
        flat = pc.list_flatten(col)
        figures["null_values"] += flat.null_count
        values = pc.fill_null(flat, 0.0).to_numpy()
        figures["non_finite_values"] += int(np.count_nonzero(~np.isfinite(values)))
    return figures


def vector_expectations() -> list[Expect]:
    return [rate_expectation(name, 0, 0) for name in VECTOR_FIGURES]


def conservation_expectations() -> list[Expect]:
    return [rate_expectation("unbalanced_rows", 0, 0)]
