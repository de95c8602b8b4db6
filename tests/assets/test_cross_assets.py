"""user_history and exposure_sequences through Dagster on consecutive simulated hours:
the hours chain (self-dependency), re-materializing gives identical bytes, the checks pass,
and the blocking leakage check fails on tampered sequences."""

import itertools

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from assets.definitions import CROSS_ASSET_NAMES, MOMENT_ASSET_NAMES
from ml.cross.gsu import GSUS, sequence_view
from ml.cross.history import DEFAULT_SHARDS, shard_name
from ml.hours import HOUR_MS, parse_hour, partition_key
from ml.io.lake import partition_dir
from ml.io.store import Store
from ml.sim import SimConfig, simulate
from tests.dagster_helpers import ASSETS, CHECKS, evaluations, resources, run_check, set_col, tamper

pytestmark = pytest.mark.slow
# with content_catalog, without the content side (segments and their windows)
UPSTREAM = [n for n in MOMENT_ASSET_NAMES if n not in ("live_segments", "segment_windows")]
CROSS = CROSS_ASSET_NAMES
KEYS = [partition_key(parse_hour("2026-01-01-00:00") + i * HOUR_MS) for i in range(3)]


def materialize(root, selection, key, **kw):
    # Upstream checks are tested with their assets; here only the Cross checks run.
    sel = dg.AssetSelection.assets(
        *selection
    ).without_checks() | dg.AssetSelection.checks_for_assets(*[a for a in selection if a in CROSS])
    return dg.materialize(
        ASSETS + CHECKS,
        selection=sel,
        partition_key=key,
        resources=resources(root),
        **kw,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cross") / "home")
    simulate(SimConfig(hours=3, users=1500, seed=3), root, progress=False)
    runs = []
    for key in KEYS:  # a backfill in order: each history hour extends the previous one
        r = materialize(root, UPSTREAM + CROSS, key)
        assert r.success
        runs.append(evaluations(r))
    return Store(root), runs


def test_history_and_sequence_checks_pass(home):
    _, runs = home
    for ev in runs:
        mine = {k: v for k, v in ev.items() if k.split(":")[0] in CROSS}
        assert len(mine) == 3 and all(mine.values()), mine


def test_history_chains_hours_and_layout(home):
    store, _ = home
    mans = [store.manifest(partition_dir("user_history", k)) for k in KEYS]
    assert mans[0]["previous"] is None and mans[0]["previous_rows"] == 0
    for prev, man in itertools.pairwise(mans):
        assert man["previous"] == prev["partition"]
        assert man["rows"] == prev["rows"] + man["interactions_added"] - man["evicted"]
    last = mans[-1]
    assert sorted(last["files"]) == [shard_name(s) for s in range(DEFAULT_SHARDS)]
    assert last["rows"] > 10_000 and last["users"] > 500
    # a user's history only grows across hours (no eviction at this size)
    assert mans[-1]["rows"] > mans[0]["rows"]


def test_sequences_one_row_per_exposure_and_zero_copy(home):
    store, _ = home
    for key in KEYS:
        seqs = store.read_published(partition_dir("exposure_sequences", key))
        ex = store.read_published(partition_dir("live_exposures", key), columns=["exposure_id"])
        assert sorted(seqs.column("exposure_id").to_pylist()) == sorted(
            ex.column("exposure_id").to_pylist()
        )
    chunk = seqs.column("sv_short_item_id").chunk(0)
    view = chunk.flatten().to_numpy(zero_copy_only=True).reshape(-1, 50)
    assert view.shape == (len(chunk), 50)
    assert np.shares_memory(view, chunk.values.to_numpy(zero_copy_only=True))
    # later hours have a history to draw from
    man = store.manifest(partition_dir("exposure_sequences", KEYS[-1]))
    assert man["sv_short_nonempty"] > 0.8 and man["sv_topk_nonempty"] > 0.8


def test_rematerializing_gives_identical_bytes(home):
    store, _ = home
    key = KEYS[1]
    before = {
        a: {n: store.read_bytes(f"{partition_dir(a, key)}/{n}") for n in sorted(
            store.manifest(partition_dir(a, key))["files"])}
        for a in CROSS
    }  # fmt: skip
    assert materialize(store.root, CROSS, key).success
    for a in CROSS:
        rel = partition_dir(a, key)
        after = {n: store.read_bytes(f"{rel}/{n}") for n in sorted(store.manifest(rel)["files"])}
        assert after == before[a], a


def test_missing_previous_history_is_a_clear_failure(home, tmp_path):
    store, _ = home
    rel = partition_dir("user_history", KEYS[0])
    man = store.manifest(rel)
    files = {n: store.read_bytes(f"{rel}/{n}") for n in man["files"]}
    store.delete(f"{rel}/_SUCCESS")
    try:
        with pytest.raises(dg.Failure, match=r"user_history 2026-01-01-00:00 is not materialized"):
            materialize(store.root, ["user_history"], KEYS[1])
    finally:
        store.publish(rel, files, {k: v for k, v in man.items() if k != "files"})


def _set_list(t: pa.Table, name: str, fn) -> pa.Table:
    col = t.column(name).combine_chunks()
    length = col.type.list_size
    values = fn(col.flatten().to_numpy().reshape(-1, length).copy())
    new = pa.FixedSizeListArray.from_arrays(
        pa.array(values.reshape(-1), col.type.value_type), length
    )
    return t.set_column(t.schema.get_field_index(name), name, new)


@pytest.mark.parametrize(
    "breakage",
    [
        # the evidence: a sequence claims an item reported at t0
        lambda t: set_col(t, "live_max_report_ms", t.column("t0_ms").to_numpy()),
        # the items: a future row slipped in (recomputation from the past disagrees)
        lambda t: _set_list(t, "sv_short_item_id", lambda v: v + 1),
    ],
)
def test_leakage_check_fails_on_tampered_sequences(home, breakage):
    store, _ = home
    key = KEYS[2]
    assert run_check(store.root, "exposure_sequences", "sequence_leakage", key) is True
    restore = tamper(store, "exposure_sequences", key, breakage)
    try:
        assert run_check(store.root, "exposure_sequences", "sequence_leakage", key) is False
    finally:
        restore()


def test_conservation_check_fails_on_a_dropped_row(home):
    store, _ = home
    key = KEYS[2]
    restore = tamper(store, "exposure_sequences", key, lambda t: t.slice(1))
    try:
        assert run_check(store.root, "exposure_sequences", "sequence_conservation", key) is False
    finally:
        restore()


def test_gsu_lengths_are_consistent_with_masks(home):
    store, _ = home
    seqs = store.read_published(partition_dir("exposure_sequences", KEYS[-1])).combine_chunks()
    for g in GSUS:
        mask = sequence_view(seqs.column(f"{g}_mask"), 50)
        assert np.array_equal(mask.sum(axis=1), seqs.column(f"{g}_len").to_numpy())
        # padding only at the end
        assert np.all(np.diff(mask, axis=1) <= 0)
