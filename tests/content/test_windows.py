"""segment_windows on hand-built segments across an hour boundary: which windows exist, their
segments in order, targets, and count features as known at each window's end."""

import numpy as np
import pyarrow as pa
import pytest
import torch

from ml import schema as S
from ml.content.segments import SEGMENT_TABLE_SCHEMA
from ml.content.windows import COUNT_FEATURES, build_segment_windows
from tests.landing_helpers import H0
from tests.moment.test_labels import ev

SEG = S.SEGMENT_MS
A, B, C = 11, 22, 33
STARTS = {A: H0 - 300_000, B: H0 - 300_000, C: H0 + 1_200_000}
FV, FT = 6, 4  # narrow vectors: widths come from the data


def segments(room: int, indices, shows=None) -> pa.Table:
    start = STARTS[room]
    idx = np.asarray(list(indices))
    n = len(idx)
    sh = np.full(n, 5, np.int32) if shows is None else np.asarray(shows, np.int32)
    enters = np.minimum(sh, idx % 4).astype(np.int32)

    def vec(values, width):
        return pa.FixedSizeListArray.from_arrays(
            pa.array(np.repeat(values.astype(np.float32), width)), width
        )

    return pa.table(
        {
            "room_id": np.full(n, room), "author_id": np.full(n, room + 1000),
            "segment_index": idx.astype(np.int32),
            "segment_start_ms": start + idx * SEG, "segment_end_ms": start + (idx + 1) * SEG,
            "shows": sh, "enters": enters,
            "ctr": pa.array(enters / np.maximum(sh, 1), pa.float32(), mask=sh == 0),
            "visual": vec(idx, FV), "asr": vec(idx + 0.5, FT), "comment": vec(-idx, FT),
        }
    )  # fmt: skip


def lake():
    a_shows = [5] * 31
    a_shows[25] = 1  # too few shows to be a window's last segment
    a_shows[22] = 0  # no show: no target, no window ends there, but later windows hold it
    a = segments(A, range(31), a_shows)
    b = segments(B, [i for i in range(31) if i != 12])  # a quarantined segment: a gap
    c = segments(C, range(11))  # too young for a whole window
    both = pa.concat_tables([a, b, c]).cast(_schema())
    end = both.column("segment_end_ms").to_numpy()
    return both.filter(pa.array(end < H0)), both.filter(pa.array(end >= H0))


def _schema():
    fields = [f for f in SEGMENT_TABLE_SCHEMA if f.name not in ("visual", "asr", "comment")]
    return pa.schema(
        [*fields, ("visual", pa.list_(pa.float32(), FV)), ("asr", pa.list_(pa.float32(), FT)),
         ("comment", pa.list_(pa.float32(), FT))]
    )  # fmt: skip


ROOM_STARTS = pa.table({"item_id": list(STARTS), "start_ms": list(STARTS.values())})


def events():
    # room A's segment 20 is [H0 + 300 s, H0 + 330 s)
    rows = [
        ev("c1", "comment", 315_000, room=A),  # reported 300 ms later, within segment 20
        ev("c2", "comment", 316_000, rep=420_001, room=A),  # reported just after 23's end
        ev("g1", "gift", 316_500, room=A, gift_value=1.0),
        ev("s1", "share", 317_000, room=A),  # not a count feature
        ev("x1", "comment", 317_500, room=999),  # unknown room
    ]
    return pa.Table.from_pylist(rows, schema=S.RAW_EVENT_SCHEMA)


def test_windows_exist_where_all_segments_are_and_the_last_had_enough_shows():
    prev, cur = lake()
    table, stats = build_segment_windows(pa.concat_tables([prev, cur]), events(), ROOM_STARTS, H0)
    ends = table.column("end_segment_index").to_pylist()
    assert table.column("room_id").to_pylist() == [A] * 10
    assert ends == [t for t in range(19, 31) if t not in (22, 25)]
    assert stats.windows == 10 and stats.too_few_shows == 2
    # ends in H: A 9..30 (22), B 9..30 less the gap (21), C 0..10 (11)
    assert stats.end_segments == 22 + 21 + 11
    assert stats.incomplete == (22 - 12) + 21 + 11


def test_a_window_holds_its_segments_in_order_with_features_and_targets():
    prev, cur = lake()
    table, _ = build_segment_windows(pa.concat_tables([prev, cur]), events(), ROOM_STARTS, H0)
    row = table.to_pylist()[0]  # A, segments 0 .. 19: eleven of them from H-1
    assert row["end_ms"] == STARTS[A] + 20 * SEG and row["author_id"] == A + 1000
    visual = np.array(row["visual"]).reshape(20, FV)
    assert (visual == np.arange(20)[:, None]).all()
    text = np.array(row["text"]).reshape(20, 2 * FT)  # ASR then comment, per segment
    assert (text[:, :FT] == np.arange(20)[:, None] + 0.5).all()
    assert (text[:, FT:] == -np.arange(20)[:, None]).all()
    assert row["shows"] == [5] * 20
    assert row["ctr"] == pytest.approx([min(5, i % 4) / 5 for i in range(20)])
    holding_22 = table.to_pylist()[3]  # ends at 23: segment 22, second to last, had no show
    assert holding_22["end_segment_index"] == 23 and holding_22["shows"][-2] == 0
    assert holding_22["ctr"][-2] == 0.0  # no target there (shows = 0 marks it)


def test_counts_are_those_reported_by_each_windows_end():
    prev, cur = lake()
    table, stats = build_segment_windows(pa.concat_tables([prev, cur]), events(), ROOM_STARTS, H0)
    comment, gift = COUNT_FEATURES.index("comment"), COUNT_FEATURES.index("gift")
    width = len(COUNT_FEATURES)
    seen = {}
    for row in table.to_pylist():
        counts = np.array(row["counts"]).reshape(20, width)
        t = row["end_segment_index"]
        pos = 19 - (t - 20)  # segment 20's place in the window
        if t < 20:
            assert counts.sum() == 0
            continue
        others = np.delete(counts, pos, axis=0)
        assert others.sum() == 0  # every event fell in segment 20
        seen[t] = (int(counts[pos, comment]), int(counts[pos, gift]))
    # c1 from the window ending at 20 on; c2 (reported after 23's end) from 24 on
    assert seen == {t: (1 if t < 24 else 2, 1) for t in range(20, 31) if t not in (22, 25)}
    assert stats.counted_events == sum(c + g for c, g in seen.values())


def test_no_windows_and_bad_arguments():
    prev, cur = lake()
    empty_live = events().slice(0, 0)
    table, stats = build_segment_windows(prev, empty_live, ROOM_STARTS, H0)
    assert table.num_rows == 0 and stats.windows == 0  # H-1 alone ends nothing in H
    with pytest.raises(ValueError):
        build_segment_windows(cur, empty_live, ROOM_STARTS, H0, window=0)


def test_windows_of_a_simulated_hour_agree_with_its_segments(tmp_path):
    """Two simulated hours: the windows of the second end in it, and the impressions known
    at a window's end are never more than the segment's final shows."""
    from ml.content.segments import build_segments, read_landing_segments
    from ml.hours import HOUR_MS
    from tests.sim_helpers import H0 as SIM_H0
    from tests.sim_helpers import simulated_hours

    sim = simulated_hours(tmp_path, hours=2, users=3000, seed=5)
    rooms = sim.store.read_parquet("landing/catalog/rooms.parquet")
    starts = rooms.select(["item_id", "start_ms"])
    segs = []
    for h in range(2):
        hour = SIM_H0 + h * HOUR_MS
        live = pa.concat_tables(sim.live[max(0, h - 1) : h + 1])
        table, _, _ = build_segments(read_landing_segments(sim.store, hour), live, rooms, hour)
        segs.append(table)
    hour = SIM_H0 + HOUR_MS
    table, stats = build_segment_windows(
        pa.concat_tables(segs), pa.concat_tables(sim.live), starts, hour
    )
    assert stats.windows > 50
    assert stats.windows + stats.too_few_shows + stats.incomplete == stats.end_segments
    n, w = table.num_rows, 20
    shows = np.array(table.column("shows").to_pylist())
    enters = np.array(table.column("enters").to_pylist())
    counts = np.array(table.column("counts").to_pylist()).reshape(n, w, len(COUNT_FEATURES))
    assert (shows[:, -1] >= 3).all()
    end = table.column("end_ms").to_numpy()
    assert ((end >= hour) & (end < hour + HOUR_MS)).all()
    assert (counts[..., COUNT_FEATURES.index("impression")] <= shows).all()
    # (enter events count in the segment they happen in; live_segments' enters belong to
    # the segment of the show that led to them, so the two differ by design)
    assert counts.sum() == stats.counted_events
    assert counts[..., COUNT_FEATURES.index("impression")].sum() > 0
    ctr = np.array(table.column("ctr").to_pylist())
    np.testing.assert_allclose(
        ctr, np.where(shows > 0, enters / np.maximum(shows, 1), 0), rtol=1e-6
    )
    assert table.column("visual").type.list_size == w * 3 * S.EMBED_DIM
    assert table.column("text").type.list_size == w * 2 * S.EMBED_DIM


def test_windows_become_tensors_of_the_data_widths():
    from ml.train.content_tensors import content_batch

    prev, cur = lake()
    table, _ = build_segment_windows(pa.concat_tables([prev, cur]), events(), ROOM_STARTS, H0)
    b = content_batch(table)
    assert b.visual.shape == (10, 20, FV) and b.text.shape == (10, 20, 2 * FT)
    assert torch.equal(b.visual[0, :, 0], torch.arange(20, dtype=torch.float32))
    assert b.y.shape == b.m.shape == (10, 20) and b.counts.shape == (10, 20, len(COUNT_FEATURES))
    assert not b.m[3, -2] and b.m[3, -1]  # the window ending at 23 holds the show-less 22
    assert (b.streamer_id == A + 1000).all()
    sub = b.take(torch.tensor([1, 2]))
    assert sub.size == 2 and torch.equal(sub.text, b.text[1:3])


def test_bad_segment_tables_are_clear_errors():
    prev, cur = lake()
    with pytest.raises(ValueError, match=r"appears twice"):
        build_segment_windows(pa.concat_tables([prev, cur, cur]), events(), ROOM_STARTS, H0)
    both = pa.concat_tables([prev, cur])
    loose = both.set_column(
        both.schema.get_field_index("visual"), "visual",
        both.column("visual").cast(pa.list_(pa.float32())),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"'visual' .* expected a fixed-size list"):
        build_segment_windows(loose, events(), ROOM_STARTS, H0)


def test_windows_with_the_wrong_count_width_are_refused_as_tensors():
    from ml.train.content_tensors import content_batch

    prev, cur = lake()
    table, _ = build_segment_windows(pa.concat_tables([prev, cur]), events(), ROOM_STARTS, H0)
    counts = table.column("counts").combine_chunks().flatten()
    narrow = pa.FixedSizeListArray.from_arrays(counts.slice(0, len(counts) // 7 * 6), 20 * 6)
    bad = table.set_column(table.schema.get_field_index("counts"), "counts", narrow)
    with pytest.raises(ValueError, match="6 features per segment, not 7"):
        content_batch(bad)
