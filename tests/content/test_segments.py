"""live_segments on a hand-built hour: counts, CTR, and every bad content row quarantined
with its reason (nothing dropped silently)."""

import numpy as np
import pyarrow as pa
import pytest

from ml import schema as S
from ml.content.segments import build_segments
from ml.ingest.catalog import CatalogSchemaError
from tests.landing_helpers import H0, ROOM
from tests.moment.test_labels import ev

D = S.EMBED_DIM
START = H0 - 60_000  # the room started a minute before the hour


def content(rows: list[tuple[int, int]], bad_visual_at: int | None = None) -> pa.Table:
    """(room, segment index) rows; visuals are variable-length lists (as a sink might write)."""
    n = len(rows)
    visual = [[0.1] * (3 * D) for _ in range(n)]
    if bad_visual_at is not None:
        visual[bad_visual_at] = [0.1] * 5
    return pa.table(
        {
            "room_id": [r for r, _ in rows],
            "author_id": [7] * n,
            "segment_index": pa.array([i for _, i in rows], pa.int32()),
            "segment_start_ms": [START + i * S.SEGMENT_MS for _, i in rows],
            "segment_end_ms": [START + (i + 1) * S.SEGMENT_MS for _, i in rows],
            "visual": pa.array(visual, pa.list_(pa.float32())),
            "asr": pa.array([[0.0] * D] * n, pa.list_(pa.float32())),
            "comment": pa.array([[0.0] * D] * n, pa.list_(pa.float32())),
        }
    )


ROOMS = pa.table({"item_id": [ROOM], "start_ms": [START]})


def test_counts_ctr_and_quarantine_reasons():
    # segment 2 of the room covers [H0, H0 + 30 s): three shows, one entered
    live = pa.Table.from_pylist(
        [
            ev("i1", "impression", 1_000, user=1),
            ev("i2", "impression", 2_000, user=2),
            ev("i3", "impression", 3_000, user=3),
            ev("e1", "enter", 4_000, user=1),
        ],
        schema=S.RAW_EVENT_SCHEMA,
    )
    rows = [(ROOM, 2), (ROOM, 3), (ROOM, 3), (999, 2), (ROOM, 500), (ROOM, 4)]
    table, quarantine, stats = build_segments(content(rows, bad_visual_at=5), live, ROOMS, H0)
    got = table.select(["segment_index", "shows", "enters", "ctr"]).to_pylist()
    assert got == [
        {"segment_index": 2, "shows": 3, "enters": 1, "ctr": pytest.approx(1 / 3)},
        {"segment_index": 3, "shows": 0, "enters": 0, "ctr": None},
    ]
    assert quarantine.reason.tolist() == [
        "duplicate_segment",
        "unknown_room",
        "segment_outside_partition",
        "bad_embedding",
    ]
    assert stats["content_rows"] == table.num_rows + len(quarantine) == len(rows)
    assert np.asarray(table.column("visual").combine_chunks().flatten()).size == 2 * 3 * D


def test_missing_content_column_is_one_clear_error():
    broken = content([(ROOM, 2)]).drop_columns(["asr"])
    with pytest.raises(
        CatalogSchemaError, match=r"content table 'segments' lacks column\(s\) \['asr'\]"
    ):
        build_segments(broken, S.RAW_EVENT_SCHEMA.empty_table(), ROOMS, H0)
