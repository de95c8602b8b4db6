"""live_segments through Dagster on a hand-built landing hour with bad feature vectors:
each bad row quarantined in the lake and counted in the metadata, the published partition
finite, rows in = clean + quarantined; the blocking checks fail when the partition breaks
what they guard; a fixed-size vector of the wrong width fails the asset with one clear error."""

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from ml import schema as S
from ml.content.segments import landing_segments_path
from ml.io.lake import quarantine_dir
from ml.io.store import Store
from tests.dagster_helpers import ASSETS, CHECKS, evaluations, resources, run_check, tamper
from tests.landing_helpers import H0, ROOM, event, write_catalog, write_landing

K0 = "2026-01-01-00:00"
ROOM_START = H0 - 600_000  # write_catalog's rooms start 10 min before H0: segment 20 ends in H0
SEGMENTS = list(range(20, 32))
W = {"visual": 3 * S.EMBED_DIM, "asr": S.EMBED_DIM, "comment": S.EMBED_DIM}
NAN, INF = float("nan"), float("inf")
FAULTY_VISUAL = {  # segment index -> its visual
    20: [NAN] + [0.1] * (W["visual"] - 1),
    21: [INF] + [0.1] * (W["visual"] - 1),
    22: [-INF] + [0.1] * (W["visual"] - 1),
    23: [None] + [0.1] * (W["visual"] - 1),
    24: None,
    25: [0.1] * 7,
}


def segments_file(visual: pa.Array | None = None) -> pa.Table:
    """The hour's segments of ROOM, variable-length vectors, visual faulty as FAULTY_VISUAL
    (or ``visual`` instead)."""
    n = len(SEGMENTS)
    vec = {c: pa.array([[0.1] * w] * n, pa.list_(pa.float32())) for c, w in W.items()}
    good = [0.1] * W["visual"]
    vec["visual"] = (
        visual
        if visual is not None
        else pa.array([FAULTY_VISUAL.get(i, good) for i in SEGMENTS], pa.list_(pa.float32()))
    )
    return pa.table(
        {
            "room_id": [ROOM] * n,
            "author_id": [77] * n,
            "segment_index": pa.array(SEGMENTS, pa.int32()),
            "segment_start_ms": [ROOM_START + i * S.SEGMENT_MS for i in SEGMENTS],
            "segment_end_ms": [ROOM_START + (i + 1) * S.SEGMENT_MS for i in SEGMENTS],
            **vec,
        }
    )


def materialize(root: str, names: str, key: str | None = None, **kw):
    return dg.materialize(
        ASSETS + CHECKS,
        selection=dg.AssetSelection.assets(*names.split()),
        partition_key=key,
        resources=resources(root),
        **kw,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    store = Store(str(tmp_path_factory.mktemp("content") / "home"))
    write_catalog(store)
    # impressions in segments 20..29 (every 6 s from H0)
    write_landing(store, "live", H0, [event(f"i{i}", t=i * 6_000) for i in range(50)])
    store.write_parquet(landing_segments_path(H0), segments_file())
    assert materialize(store.root, "content_catalog", K0).success
    assert materialize(store.root, "raw_live_events", K0).success
    result = materialize(store.root, "live_segments", K0)
    return store, result


def test_bad_vectors_quarantined_and_counted(home):
    store, result = home
    assert result.success
    meta = result.asset_materializations_for_node("live_segments")[0].metadata
    assert meta["content_rows"].value == len(SEGMENTS)
    assert meta["dagster/row_count"].value == len(SEGMENTS) - len(FAULTY_VISUAL)
    assert meta["quarantined"].value == len(FAULTY_VISUAL)
    assert meta["quarantined_by_reason"].value == {"bad_embedding": len(FAULTY_VISUAL)}
    faults = {"NaN": 1, "+Inf": 1, "-Inf": 1, "null value": 1, "null vector": 1, "wrong width": 1}
    assert meta["bad_embedding_faults"].value == {"visual": faults}
    q = store.read_published(quarantine_dir("live_segments", K0))
    assert q.schema == S.QUARANTINE_SCHEMA
    assert q.column("source_file").to_pylist() == [landing_segments_path(H0)] * 6
    assert q.column("line_number").to_pylist() == [1, 2, 3, 4, 5, 6]
    assert q.column("detail").to_pylist() == [
        "visual: 1 NaN",
        "visual: 1 +Inf",
        "visual: 1 -Inf",
        "visual: 1 null value",
        "visual: null vector",
        f"visual: width 7 (expected {W['visual']})",
    ]
    seg = store.read_published(f"lake/live_segments/{K0}")
    assert seg.column("segment_index").to_pylist() == SEGMENTS[6:]
    assert np.isfinite(np.asarray(seg.column("visual").combine_chunks().flatten())).all()


def test_checks_pass_on_the_quarantined_hour(home):
    _, result = home
    ev = evaluations(result)
    assert ev == {
        "live_segments:segment_ctr": True,
        "live_segments:finite_vectors": True,
        "live_segments:segment_conservation": True,
    }


def _nan_in_first_visual(t: pa.Table) -> pa.Table:
    flat = np.asarray(t.column("visual").combine_chunks().flatten()).copy()
    flat[3] = np.nan
    col = pa.FixedSizeListArray.from_arrays(pa.array(flat), W["visual"])
    return t.set_column(t.schema.get_field_index("visual"), "visual", col)


@pytest.mark.parametrize(
    "check, breakage",
    [
        ("finite_vectors", _nan_in_first_visual),
        ("segment_conservation", lambda t: t.slice(1)),  # a clean row lost
    ],
)
def test_blocking_checks_fail_on_broken_partition(home, check, breakage):
    store, _ = home
    assert run_check(store.root, "live_segments", check, K0) is True
    restore = tamper(store, "live_segments", K0, breakage)
    try:
        assert run_check(store.root, "live_segments", check, K0) is False
    finally:
        restore()


def test_wrong_fixed_width_fails_naming_file_column_and_widths(tmp_path):
    store = Store(str(tmp_path / "home"))
    write_catalog(store)
    write_landing(store, "live", H0, [event(f"i{i}", t=i * 6_000) for i in range(50)])
    assert materialize(store.root, "content_catalog", K0).success
    assert materialize(store.root, "raw_live_events", K0).success
    n = len(SEGMENTS)
    visual = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(n * 64, np.float32)), 64)
    store.write_parquet(landing_segments_path(H0), segments_file(visual=visual))
    with pytest.raises(
        Exception,
        match=r"content table 'segments' \(.*landing/content/2026-01-01-00/segments\.parquet\): "
        r"column 'visual' is a fixed-size list of width 64, expected width 96",
    ):
        materialize(store.root, "live_segments", K0)
