"""Moment-side assets and their checks through Dagster, on simulated hours; each blocking
check is shown to fail on data broken in the way it guards against."""

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.definitions import MOMENT_ASSET_NAMES
from ml.hours import HOUR_MS, parse_hour, partition_key
from ml.io.lake import partition_dir
from ml.io.store import Store
from ml.moment.emission_hour import label_hour
from ml.moment.user_activity import COUNTERS
from ml.sim import SimConfig, simulate
from tests.dagster_helpers import (
    ASSETS,
    CHECKS,
    evaluations,
    resources,
    run_check,
    set_col,
    tamper,
)

pytestmark = pytest.mark.slow
HOURLY = MOMENT_ASSET_NAMES
KEYS = [partition_key(parse_hour("2026-01-01-00:00") + i * HOUR_MS) for i in range(5)]
STREAM_TABLES = ("moment_samples", "fast_samples", "slow_samples")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("labels") / "home")
    simulate(SimConfig(hours=5, users=3000, seed=2, bad_rate=0.001), root, progress=False)
    res = resources(root)
    runs = []  # the hourly selection includes content_catalog (of the same hour)
    for key in KEYS[:4]:
        r = dg.materialize(
            ASSETS + CHECKS,
            selection=dg.AssetSelection.assets(*HOURLY),
            partition_key=key,
            resources=res,
        )
        runs.append(evaluations(r))
    return Store(root), runs


def test_every_check_passes_on_clean_simulated_hours(home):
    _, runs = home
    # every check of an asset the runs materialize, each evaluated once a run
    n_checks = sum(k.asset_key.to_user_string() in HOURLY for c in CHECKS for k in c.check_keys)
    for ev in runs:
        assert len(ev) == n_checks and all(ev.values()), [k for k, v in ev.items() if not v]


def test_outcomes_need_their_future_hours(home):
    store, _ = home
    res = resources(store.root)
    ok = dg.materialize(
        ASSETS + CHECKS,
        selection=dg.AssetSelection.assets("live_outcomes"),
        partition_key=KEYS[0],
        resources=res,
    )
    assert ok.success
    out = store.read_published(partition_dir("live_outcomes", KEYS[0]))
    exposures = store.read_published(partition_dir("live_exposures", KEYS[0]))
    assert sorted(out.column("exposure_id").to_pylist()) == sorted(
        exposures.column("exposure_id").to_pylist()
    )
    with pytest.raises(dg.Failure, match=r"raw_live_events 2026-01-01-04:00 is not materialized"):
        dg.materialize(
            ASSETS + CHECKS,
            selection=dg.AssetSelection.assets("live_outcomes"),
            partition_key=KEYS[1],
            resources=res,
        )


@pytest.mark.parametrize(
    ("asset", "check", "breakage"),
    [
        (
            "moment_samples",
            "mask_invariants",
            lambda t: set_col(t, "m_gift", np.ones(t.num_rows, bool)),
        ),
        (
            "slow_samples",
            "mask_invariants",
            lambda t: set_col(t, "m_click", np.ones(t.num_rows, bool)),
        ),
        (
            "fast_samples",
            "label_leakage",
            lambda t: set_col(t, "y_gift", np.ones(t.num_rows, np.int8)),
        ),
        (
            "moment_samples",
            "join_completeness",
            lambda t: set_col(t, "exposure_id", [f"ghost{i}" for i in range(t.num_rows)]),
        ),
        (
            "fast_samples",
            "label_rates",
            lambda t: set_col(t, "y_click", np.ones(t.num_rows, np.int8)),
        ),
        (
            "live_exposures",
            "feature_leakage",
            lambda t: set_col(
                t, "room_imp_5m_f30s", pc.add(t.column("room_imp_5m_f30s"), 1).to_numpy()
            ),
        ),
        (
            "live_exposures",
            "feature_leakage",
            lambda t: set_col(t, "user_sv_play_total", pc.add(t.column("user_sv_play_total"), 1)),
        ),
        (
            "user_activity",
            "activity_accumulates",
            lambda t: set_col(t, "live_enter", pc.add(t.column("live_enter"), 1)),
        ),
        (
            "user_activity",
            "activity_accumulates",
            lambda t: t.slice(1),  # a user lost
        ),
        (
            "live_segments",
            "segment_ctr",
            lambda t: set_col(t, "ctr", np.full(t.num_rows, 1.5, np.float32)),
        ),
    ],
)
def test_blocking_checks_fail_on_broken_data(home, asset, check, breakage):
    store, _ = home
    key = KEYS[3]
    assert run_check(store.root, asset, check, key) is True
    restore = tamper(store, asset, key, breakage)
    try:
        assert run_check(store.root, asset, check, key) is False
    finally:
        restore()


def test_label_drift_blocks_a_jump_against_previous_hours(home):
    """The previous hours claim a 10 % click rate; hour 3's ~40 % is then a jump."""
    store, _ = home
    saved = []
    for key in KEYS[:3]:
        rel = partition_dir("live_exposures", key)
        man = store.manifest(rel)
        files = {n: store.read_bytes(f"{rel}/{n}") for n in man["files"]}
        meta = {k: v for k, v in man.items() if k != "files"}
        saved.append((rel, files, meta))
        store.publish(rel, files, {**meta, "fast_click_rate": 0.1})
    try:
        assert run_check(store.root, "fast_samples", "label_rates", KEYS[3]) is False
    finally:
        for rel, files, meta in saved:
            store.publish(rel, files, meta)
    assert run_check(store.root, "fast_samples", "label_rates", KEYS[3]) is True


def test_activity_so_far_continues_from_user_activity(home):
    """Hour 4 starts its users' counters from user_activity[0] (everything reported
    before 01:00) plus its own look-back: the same totals as counting every raw event
    of hours 0..4 reported before each t0."""
    store, _ = home
    res = resources(store.root)
    r = dg.materialize(
        ASSETS + CHECKS,
        selection=dg.AssetSelection.assets(*HOURLY),
        partition_key=KEYS[4],
        resources=res,
    )
    assert r.success and all(evaluations(r).values())
    got = store.read_published(partition_dir("live_exposures", KEYS[4]))
    live = pa.concat_tables(
        [store.read_published(partition_dir("raw_live_events", k)) for k in KEYS]
    )
    sv = pa.concat_tables(
        [store.read_published(partition_dir("raw_short_video_events", k)) for k in KEYS]
    )
    want = label_hour(live, sv, parse_hour(KEYS[4])).exposures
    assert got.num_rows == want.num_rows > 0
    got, want = got.sort_by("exposure_id"), want.sort_by("exposure_id")
    for col in COUNTERS.values():
        assert got.column(col).equals(want.column(col)), col
    # the snapshot mattered: some user had activity before 01:00 and it was counted
    first = store.read_published(partition_dir("user_activity", KEYS[0]))
    assert first.num_rows > 0
    assert (
        pc.sum(got.column("user_sv_play_total")).as_py()
        > pc.sum(got.column("user_sv_play_1h")).as_py()
    )


def test_missing_activity_snapshot_is_a_clear_failure_and_none_before_the_start(tmp_path):
    from assets.moment import activity_before, read_activity
    from assets.partitions import START_MS

    empty = Store(str(tmp_path))
    with pytest.raises(dg.Failure, match=r"user_activity 2026-01-01-01:00 is not materialized"):
        activity_before(empty, START_MS + 5 * HOUR_MS)  # needs user_activity[H - 4]
    with pytest.raises(dg.Failure, match=r"user_activity 2026-01-01-00:00 is not materialized"):
        read_activity(empty, START_MS)
    # hours whose snapshot would precede the data: nothing was reported before
    first = activity_before(empty, START_MS + 3 * HOUR_MS)
    assert first.table is None and first.since_ms == START_MS
    assert read_activity(empty, START_MS - HOUR_MS) is None


def test_a_run_that_picks_some_label_tables_publishes_only_those(home, tmp_path):
    """The label multi-asset is subsettable: a run asking for fast_samples alone rebuilds
    fast_samples (identical bytes) and leaves the other three tables untouched."""
    import shutil
    from pathlib import Path

    lake, _ = home
    root = str(tmp_path / "copy")
    shutil.copytree(lake.root, root)
    copy = Store(root)
    key = KEYS[3]
    marker = {
        a: Path(root) / partition_dir(a, key) / "_SUCCESS"
        for a in (*STREAM_TABLES, "live_exposures")
    }
    before = {a: (p.read_bytes(), p.stat().st_mtime_ns) for a, p in marker.items()}
    r = dg.materialize(
        ASSETS + CHECKS,
        selection=dg.AssetSelection.assets("fast_samples"),
        partition_key=key,
        resources=resources(root),
    )
    assert r.success
    built = [e.asset_key.to_user_string() for e in r.get_asset_materialization_events()]
    assert built == ["fast_samples"]
    for asset, p in marker.items():
        assert p.read_bytes() == before[asset][0], asset  # same inputs, same bytes
        rewritten = p.stat().st_mtime_ns != before[asset][1]
        assert rewritten == (asset == "fast_samples"), asset
    assert copy.manifest(partition_dir("fast_samples", key)) is not None


def test_segment_windows_of_an_hour_are_those_of_its_segments_and_raw_events(home):
    """(On these simulated hours: the content stage's windows, H-1 .. H read from the lake.)"""
    from ml.content.windows import build_segment_windows

    store, _ = home
    key, hour = KEYS[1], parse_hour(KEYS[1])
    result = dg.materialize(
        ASSETS + CHECKS,
        selection=dg.AssetSelection.assets("segment_windows"),
        partition_key=key,
        resources=resources(store.root),
    )
    assert result.success
    got = store.read_published(partition_dir("segment_windows", key))
    segments = pa.concat_tables(
        store.read_published(partition_dir("live_segments", k)) for k in KEYS[:2]
    )
    live = pa.concat_tables(
        store.read_published(partition_dir("raw_live_events", k)) for k in KEYS[:2]
    )
    rooms = store.read_parquet(f"{partition_dir('content_catalog', key)}/rooms.parquet")
    want, stats = build_segment_windows(segments, live, rooms.select(["item_id", "start_ms"]), hour)
    assert got.num_rows == want.num_rows == stats.windows > 0
    assert got.equals(want)
    meta = result.asset_materializations_for_node("segment_windows")[0].metadata
    assert meta["dagster/row_count"].value == stats.windows
    assert meta["incomplete"].value == stats.incomplete


def test_content_ctr_trains_hour_after_hour_scoring_before_training(home):
    """ContentCTR on the same simulated hours: model[H] resumes model[H-1], the hour's
    predictions come from the model before it trained on them, the evaluation reports."""
    from ml.train.checkpoint import load_checkpoint

    store, _ = home
    res = resources(store.root)

    def run(names, key):
        return dg.materialize(
            ASSETS + CHECKS, selection=dg.AssetSelection.assets(*names),
            partition_key=key, resources=res,
        )  # fmt: skip

    assert run(["segment_windows"], KEYS[0]).success
    assert run(["segment_windows"], KEYS[1]).success  # (also the windows test's: idempotent)
    with pytest.raises(dg.Failure, match=r"content_ctr_model 2026-01-01-00:00 is not"):
        run(["content_ctr_model", "content_predictions"], KEYS[1])
    for key in KEYS[:2]:
        assert run(["content_ctr_model", "content_predictions"], key).success
    state = load_checkpoint(
        store.read_bytes(f"{partition_dir('content_ctr_model', KEYS[1])}/checkpoint.pt")
    )
    windows = [store.read_published(partition_dir("segment_windows", k)).num_rows for k in KEYS[:2]]
    assert state["counters"]["hours"] == 2
    assert state["counters"]["steps"] == sum(-(-n // 48) for n in windows)
    pred = store.read_published(partition_dir("content_predictions", KEYS[1]))
    assert pred.num_rows == windows[1]
    p = np.array(pred.column("p_ctr").to_pylist())
    assert p.shape == (windows[1], 20) and ((p > 0) & (p < 1)).all()
    result = run(["content_ctr_eval"], KEYS[1])
    meta = result.asset_materializations_for_node("content_ctr_eval")[0].metadata
    assert -1.0 <= meta["kendall_tau"].value <= 1.0
    assert "predicted_vs_true" in meta and "evaluation" in meta
