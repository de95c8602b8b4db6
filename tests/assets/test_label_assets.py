"""Moment-side assets and their checks through Dagster, on simulated hours; each blocking
check is shown to fail on data broken in the way it guards against."""

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.definitions import MOMENT_ASSET_NAMES, defs
from ml.hours import HOUR_MS, parse_hour, partition_key
from ml.io.lake import partition_dir
from ml.io.store import Store, parquet_parts
from ml.sim import SimConfig, simulate
from tests.dagster_helpers import ASSETS, CHECKS, evaluations, resources, run_check

pytestmark = pytest.mark.slow
HOURLY = MOMENT_ASSET_NAMES
KEYS = [partition_key(parse_hour("2026-01-01-00:00") + i * HOUR_MS) for i in range(5)]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("labels") / "home")
    simulate(SimConfig(hours=5, users=3000, seed=2, bad_rate=0.001), root, progress=False)
    res = resources(root)
    assert dg.materialize(
        ASSETS + CHECKS, selection=dg.AssetSelection.assets("content_catalog"), resources=res
    ).success
    runs = []
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
    for ev in runs:
        assert len(ev) == 20 and all(ev.values()), [k for k, v in ev.items() if not v]


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


@dg.asset(partitions_def=defs.resolve_job_def("hourly_ingestion").partitions_def)
def tamper(store, asset, key, fn):
    rel = partition_dir(asset, key)
    man = store.manifest(rel)
    before = store.read_published(rel)
    store.publish(rel, parquet_parts(fn(before)), {k: v for k, v in man.items() if k != "files"})
    return lambda: store.publish(
        rel, parquet_parts(before), {k: v for k, v in man.items() if k != "files"}
    )


def set_col(t: pa.Table, name: str, values) -> pa.Table:
    return t.set_column(
        t.schema.get_field_index(name), name, pa.array(values, t.schema.field(name).type)
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
    store, _ = home
    rel = partition_dir("live_exposures", KEYS[2])
    man = store.manifest(rel)
    files = {n: store.read_bytes(f"{rel}/{n}") for n in man["files"]}
    store.publish(
        rel, files, {**{k: v for k, v in man.items() if k != "files"}, "fast_click_rate": 0.9}
    )
    try:
        assert run_check(store.root, "fast_samples", "label_rates", KEYS[3]) is False
    finally:
        store.publish(rel, files, {k: v for k, v in man.items() if k != "files"})
    assert run_check(store.root, "fast_samples", "label_rates", KEYS[3]) is True
