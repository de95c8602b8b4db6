"""Bad segment feature vectors never publish: each row with a null vector, a vector of the
wrong width, a null element, NaN, +-Inf or a value beyond float32 is quarantined as
bad_embedding with a detail naming the column and the fault (rows in = clean +
quarantined); a whole-file fault (wrong fixed width, wrong type) is one clear error
naming the file, the column, the expected and the found."""

import json

import numpy as np
import pyarrow as pa
import pytest

from ml import schema as S
from ml.content.segments import (
    SegmentSchemaError,
    build_segments,
    quarantine_table,
    read_landing_segments,
)
from ml.importers.kuailive_segments import OUT_SCHEMA
from ml.io.store import Store
from tests.landing_helpers import H0, ROOM

D = S.EMBED_DIM
VARLIST = pa.list_(pa.float32())  # a sink may write variable-length lists
START = H0 - 60_000  # the room started a minute before the hour: segments 2.. end in H0
ROOMS = pa.table({"item_id": [ROOM], "start_ms": [START]})
NO_EVENTS = S.RAW_EVENT_SCHEMA.empty_table()
WIDTH = {"visual": 3 * D, "asr": D, "comment": D}
SOURCE = "landing/content/2026-01-01-00/segments.parquet"


def vectors(n: int, width: int) -> list[list[float]]:
    return [[0.1] * width for _ in range(n)]


def content(n: int, typ=VARLIST, **cols) -> pa.Table:
    """n valid segments 2.. of ROOM; ``cols`` replace a vector column by python lists."""
    vec = {c: cols.get(c, vectors(n, w)) for c, w in WIDTH.items()}
    return pa.table(
        {
            "room_id": [ROOM] * n,
            "author_id": [7] * n,
            "segment_index": pa.array(range(2, n + 2), pa.int32()),
            "segment_start_ms": [START + i * S.SEGMENT_MS for i in range(2, n + 2)],
            "segment_end_ms": [START + (i + 1) * S.SEGMENT_MS for i in range(2, n + 2)],
            **{c: pa.array(v, typ) for c, v in vec.items()},
        }
    )


def with_values(n: int, col: str, faults: dict[int, list]) -> list:
    rows = vectors(n, WIDTH[col])
    for i, v in faults.items():
        rows[i] = v
    return rows


def replace(t: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return t.set_column(t.schema.get_field_index(name), name, values)


def build(table: pa.Table):
    return build_segments(table, NO_EVENTS, ROOMS, H0, source=SOURCE)


def test_each_fault_quarantined_with_column_and_what_was_wrong():
    w = WIDTH["visual"]
    nan, inf = float("nan"), float("inf")
    visual = with_values(
        9,
        "visual",
        {
            1: [nan] + [0.1] * (w - 1),
            2: [inf, inf] + [0.1] * (w - 2),
            3: [-inf] + [0.1] * (w - 1),
            4: [None] + [0.1] * (w - 1),
            5: None,
            6: [0.1] * 5,
        },
    )
    asr = with_values(9, "asr", {7: [nan, -inf] + [0.1] * (D - 2)})
    table, q, stats = build(content(9, visual=visual, asr=asr))
    assert q.row_number.tolist() == [2, 3, 4, 5, 6, 7, 8]  # 1-based rows of the file
    assert set(q.reason) == {"bad_embedding"}
    assert q.detail.tolist() == [
        "visual: 1 NaN",
        "visual: 2 +Inf",
        "visual: 1 -Inf",
        "visual: 1 null value",
        "visual: null vector",
        f"visual: width 5 (expected {w})",
        "asr: 1 NaN, 1 -Inf",
    ]
    assert table.column("segment_index").to_pylist() == [2, 10]
    assert stats["content_rows"] == 9 == table.num_rows + len(q) == stats["segments"] + len(q)
    assert stats["quarantined"] == 7 and stats["reasons"] == {"bad_embedding": 7}
    assert stats["bad_embedding"] == {
        "visual": {
            "null vector": 1,
            "wrong width": 1,
            "null value": 1,
            "NaN": 1,
            "+Inf": 1,
            "-Inf": 1,
        },
        "asr": {"NaN": 1, "-Inf": 1},
    }
    flat = np.asarray(table.column("visual").combine_chunks().flatten())
    assert (
        np.isfinite(flat).all()
        and table.column("visual").type == S.SEGMENTS_SCHEMA.field("visual").type
    )


def test_fixed_size_columns_and_float64_overflow():
    """A fixed-size float64 column of the right width: NaN, Inf and a value float32 cannot
    hold (it would publish as Inf) are all caught; null vectors too."""
    visual = with_values(
        4, "visual", {0: [1e300] + [0.1] * (3 * D - 1), 1: None, 2: [float("nan")] * (3 * D)}
    )
    t = replace(content(4), "visual", pa.array(visual, pa.list_(pa.float64(), 3 * D)))
    t = replace(t, "asr", pa.array(vectors(4, D), pa.list_(pa.float32(), D)))
    table, q, _ = build(t)
    assert q.detail.tolist() == [
        "visual: 1 beyond float32",
        "visual: null vector",
        f"visual: {3 * D} NaN",
    ]
    assert table.num_rows == 1 and table.column("visual").type == pa.list_(pa.float32(), 3 * D)


def test_a_good_repeat_outlives_a_bad_first_copy():
    visual = with_values(3, "visual", {0: [float("nan")] * (3 * D)})
    t = replace(content(3, visual=visual), "segment_index", pa.array([2, 2, 3], pa.int32()))
    table, q, _ = build(t)
    assert q.reason.tolist() == ["bad_embedding"] and q.row_number.tolist() == [1]
    assert table.column("segment_index").to_pylist() == [2, 3]


def test_quarantine_table_in_the_lake_schema():
    visual = with_values(3, "visual", {1: None})
    _, q, _ = build(content(3, visual=visual))
    qt = quarantine_table(q, SOURCE)
    assert qt.schema == S.QUARANTINE_SCHEMA
    row = qt.to_pylist()[0]
    assert row["source_file"] == SOURCE and row["line_number"] == 2
    assert row["reason"] == "bad_embedding" and row["detail"] == "visual: null vector"
    assert row["event_id"] is None
    assert json.loads(row["raw_line"]) == {
        "room_id": ROOM,
        "segment_index": 3,
        "segment_end_ms": START + 4 * S.SEGMENT_MS,
    }
    assert quarantine_table(build(content(2))[1], SOURCE).num_rows == 0


@pytest.mark.parametrize("col", ["visual", "asr", "comment"])
def test_fixed_size_list_of_the_wrong_width_is_one_clear_error(col):
    bad = pa.array(vectors(2, WIDTH[col] + 4), pa.list_(pa.float32(), WIDTH[col] + 4))
    t = replace(content(2), col, bad)
    msg = (
        rf"content table 'segments' \({SOURCE}\): column '{col}' is a fixed-size list of "
        rf"width {WIDTH[col] + 4}, expected width {WIDTH[col]}"
    )
    with pytest.raises(SegmentSchemaError, match=msg):
        build(t)


@pytest.mark.parametrize(
    "bad, found",
    [
        (pa.array([["a"], ["b"]], pa.list_(pa.string())), "list<item: string>"),
        (pa.array([1.0, 2.0]), "double"),
    ],
)
def test_vector_column_of_another_type_is_one_clear_error(bad, found):
    t = replace(content(2), "visual", bad)
    with pytest.raises(
        SegmentSchemaError,
        match=rf"\({SOURCE}\): column 'visual' has type {found}, expected a list of {3 * D}",
    ):
        build(t)


def test_uncastable_id_column_names_file_and_column():
    t = replace(content(2), "room_id", pa.array(["x", "y"]))
    with pytest.raises(SegmentSchemaError, match=rf"\({SOURCE}\): column 'room_id' of type string"):
        build(t)


def test_from_a_parquet_file_on_disk(tmp_path):
    """The real read path: a sink's variable-length float64 vectors, NaN and null intact."""
    store = Store(str(tmp_path))
    visual = with_values(3, "visual", {0: [float("nan")] * (3 * D), 2: [None] * (3 * D)})
    store.write_parquet(SOURCE, content(3, pa.list_(pa.float64()), visual=visual))
    table, q, stats = build(read_landing_segments(store, H0))
    assert q.detail.tolist() == [f"visual: {3 * D} NaN", f"visual: {3 * D} null value"]
    assert table.num_rows == 1 and stats["content_rows"] == 3


def test_importer_output_passes_untouched():
    """The KuaiLive-M3 importer's file (fixed 96/32/32 widths + a 128-d extra column that
    is not part of the contract) and its empty hour file go through whole."""
    n = 4
    arrays = {
        **{c: pa.array(v) for c, v in content(n).to_pydict().items() if c not in WIDTH},
        **{c: pa.array(vectors(n, w), pa.list_(pa.float32(), w)) for c, w in WIDTH.items()},
        "feature_128": pa.array([[float("nan")] * 128] * n, pa.list_(pa.float32(), 128)),
        "coverage_ms": pa.array([30_000] * n, pa.int32()),
    }
    imported = pa.table(arrays).cast(OUT_SCHEMA)
    table, q, stats = build(imported)
    assert table.num_rows == n and len(q) == 0 and stats["bad_embedding"] == {}
    table, q, stats = build(OUT_SCHEMA.empty_table())
    assert table.num_rows == 0 and len(q) == 0 and stats["reasons"] == {}
