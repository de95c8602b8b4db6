"""Samples into tensors: every sample gets its own exposure's features and sequences, across
hour boundaries; content rows resolve by domain; a missing exposure fails naming it."""

import numpy as np
import pyarrow as pa
import pytest

from ml.cross.catalog_view import CatalogView
from ml.cross.gsu import sequence_schema
from ml.cross.history import ACTION_CODES
from ml.models.inputs import gap_buckets
from ml.models.ranking import MomentCrossConfig
from ml.moment.features import EXPOSURE_SCHEMA
from ml.moment.labels import SAMPLE_SCHEMA
from ml.schema import GSUS, TASKS
from ml.train.hour_data import hour_data
from ml.train.stream import TrainConfig
from ml.train.tensors import (
    ContentTable,
    MissingExposureError,
    exposure_rows,
    join_samples,
    room_feature_columns,
)

H = 1_767_225_600_000  # 2026-01-01 00:00 UTC
HOUR = 3_600_000
L = 4
PLAY, ENTER = ACTION_CODES["short_video", "play"], ACTION_CODES["live", "enter"]


def catalog() -> CatalogView:
    emb = pa.list_(pa.float32(), 32)

    def table(ids, cats, authors, rows):
        vecs = [np.eye(32, dtype=np.float32)[r].tolist() for r in rows]
        return pa.table({"item_id": ids, "author_id": authors, "category": pa.array(cats, pa.int32()),
                         "embedding": pa.array(vecs, emb)})  # fmt: skip

    return CatalogView.from_tables(
        table([500, 501, 502], [1, 2, 3], [7, 7, 8], [0, 1, 2]),  # short videos
        table([900, 901], [4, 5], [70, 71], [10, 11]),  # rooms
    )


def exposures(rows: list[tuple]) -> pa.Table:
    """rows: (exposure_id, user, room, author, t0, marker); ``marker`` fills every
    feature column, so a sample's features say which exposure they came from."""
    cols = {f.name: [] for f in EXPOSURE_SCHEMA}
    for eid, user, room, author, t0, marker in rows:
        vals = {"exposure_id": eid, "user_id": user, "room_id": room, "author_id": author,
                "page": "follow", "t0_ms": t0, "impression_report_ms": t0,
                "hour_of_day": 5, "day_of_week": 3}  # fmt: skip
        for f in EXPOSURE_SCHEMA:
            cols[f.name].append(vals.get(f.name, marker))
    return pa.table(cols, schema=EXPOSURE_SCHEMA)


def sequences(rows: list[tuple]) -> pa.Table:
    """rows: (exposure_id, [(item, action, gap_ms), ...] for the sv_short GSU)."""
    schema = sequence_schema(L)
    out = {f.name: [] for f in schema}
    for eid, items in rows:
        for f in schema:
            name = f.name
            if name == "exposure_id":
                out[name].append(eid)
            elif pa.types.is_fixed_size_list(f.type):
                g = next(g for g in GSUS if name.startswith(g + "_"))
                field = name[len(g) + 1 :]
                real = items if g == "sv_short" else []
                val = {"item_id": [i for i, _, _ in real], "author_id": [7 for _ in real],
                       "category": [2 for _ in real], "emb_row": [0 for _ in real],
                       "gap_ms": [gp for _, _, gp in real], "action": [a for _, a, _ in real],
                       "mask": [1 for _ in real], "score": [0.0 for _ in real]}[field]  # fmt: skip
                pad = {"category": -1, "emb_row": -1}.get(field, 0)
                out[name].append(val + [pad] * (L - len(val)))
            else:
                out[name].append(0)
    return pa.table(out, schema=schema)


def samples(rows: list[tuple]) -> pa.Table:
    """rows: (exposure_id, emit_ms, labelled task or None for all-negative)."""
    cols = {f.name: [] for f in SAMPLE_SCHEMA}
    for eid, emit, task in rows:
        vals = {"exposure_id": eid, "user_id": 1, "room_id": 900, "t0_ms": 0, "emit_ms": emit,
                "label_cutoff_ms": emit, "kind": "first_positive"}  # fmt: skip
        for t in TASKS:
            vals[f"y_{t}"] = int(task == t)
            vals[f"m_{t}"] = task is None or task == t
        for f in SAMPLE_SCHEMA:
            cols[f.name].append(vals[f.name])
    return pa.table(cols, schema=SAMPLE_SCHEMA)


def test_each_sample_gets_its_own_exposure_across_an_hour_boundary():
    content = ContentTable.from_catalog(catalog())
    ex0 = exposures([("a", 1, 900, 70, H - 600_000, 3), ("b", 2, 901, 71, H - 100_000, 5)])
    ex1 = exposures([("c", 3, 900, 70, H + 10_000, 7)])
    seq0 = sequences([("b", [(501, PLAY, 90_000)]), ("a", [(500, PLAY, 5_000), (902, ENTER, 1)])])
    seq1 = sequences([("c", [])])
    rows0 = exposure_rows(ex0, seq0, content, "30s", L)
    rows1 = exposure_rows(ex1, seq1, content, "30s", L)
    from ml.train.tensors import concat_rows

    rows = concat_rows([rows0, rows1])
    # a slow sample of "a" (previous hour) and a moment sample of "c", emitted in H
    s = join_samples("moment", samples([("c", H + 40_000, "click"), ("a", H + 3_000, None)]), rows)
    assert s.row.tolist() == [2, 0]
    x = rows.inputs(s.row, content=None)
    assert x.user_id.tolist() == [3, 1] and x.room_id.tolist() == [900, 900]
    # feature markers: "c" was built with 7s, "a" with 3s (log1p of counts; CTRs as they are)
    assert np.allclose(x.room_feats[:, 0].numpy(), np.log1p([7, 3]))
    assert np.allclose(x.room_feats[:, -1].numpy(), [7, 3])
    assert np.allclose(x.user_feats[:, 0].numpy(), np.log1p([7, 3]))
    assert x.context[0].tolist() == [5, 3, 2]  # page "follow" is code 2 (0 = unknown)
    # sequences of "a" (joined by id, not by row order), padded, with content rows by domain
    g = GSUS.index("sv_short")
    assert x.seq_item[1, g].tolist() == [500, 902, 0, 0]
    assert x.seq_mask[1, g].tolist() == [True, True, False, False]
    assert x.seq_row[1, g].tolist() == [1, 0, 0, 0]  # 902 is no room of the catalog: row 0
    assert x.seq_gap[1, g, 0].item() == gap_buckets(np.array([5_000]))[0]
    assert not x.seq_mask[0].any()  # "c" has an empty history
    assert x.room_row.tolist() == [content.room_offset, content.room_offset]  # room 900: row 0
    assert s.y[0].tolist() == [1, 0, 0, 0, 0, 0] and s.m[0].tolist() == [True] + [False] * 5
    assert s.m[1].all() and not s.y[1].any()


def test_freshness_picks_its_own_columns():
    assert room_feature_columns("30s")[0] == "room_imp_30s_f30s"
    assert room_feature_columns("5m")[-1] == "room_ctr_5m_f5m"
    assert len(room_feature_columns("5m")) == 12
    assert not set(room_feature_columns("30s")) & set(room_feature_columns("5m"))
    with pytest.raises(ValueError, match="freshness"):
        room_feature_columns("1h")


def test_content_rows_resolve_by_domain():
    content = ContentTable.from_catalog(catalog())
    rows = content.item_rows(np.array([500, 502, 900, 901, 999]),
                             np.array([PLAY, PLAY, ENTER, ENTER, PLAY]))  # fmt: skip
    assert rows.tolist() == [1, 3, 4, 5, 0]
    assert np.array_equal(content.table[4], catalog().rooms.embedding[0])
    assert not content.table[0].any()


def test_a_sample_without_its_exposure_fails_naming_it():
    content = ContentTable.from_catalog(catalog())
    rows = exposure_rows(exposures([("a", 1, 900, 70, H, 1)]), None, content, "30s", L)
    with pytest.raises(MissingExposureError, match=r"1 fast samples .*'zz'"):
        join_samples("fast", samples([("a", H + 1, None), ("zz", H + 2, None)]), rows)


def test_hour_data_keeps_only_the_lookback_exposures_that_samples_need():
    content_cat = catalog()

    class Reader:
        def samples(self, stream, key, columns):
            return samples([("c", H + 40_000, "click"), ("a", H + 3_000, None)]).select(columns)

        def exposures(self, key, columns=None):
            if key == "prev":
                return exposures([("a", 1, 900, 70, H - 600_000, 3), ("x", 9, 900, 70, H - 5, 4)])
            return exposures([("c", 3, 900, 70, H + 10_000, 7), ("d", 4, 901, 71, H - 10, 8)])

        def sequences(self, key):
            ids = ["a", "x"] if key == "prev" else ["c", "d"]
            return sequences([(i, []) for i in ids])

    cfg = MomentCrossConfig(seq_len=L)
    d = hour_data(Reader(), H, "now", ["prev", "now"], content_cat, cfg, TrainConfig())
    assert d.rows.exposure_id.to_pylist() == ["a", "c", "d"]  # "x" is nobody's exposure
    assert d.score_rows.tolist() == [1, 2]  # the hour's own exposures are scored
    assert d.samples[0].row.tolist() == [1, 0]
    with pytest.raises(ValueError, match="must end with the hour"):
        hour_data(Reader(), H, "now", ["now", "prev"], content_cat, cfg, TrainConfig())
