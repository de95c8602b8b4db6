"""The model stage through Dagster on simulated hours: training per variant with its
progressive check, evaluation metadata, TensorBoard logs read back, clear failures."""

import dagster as dg
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from assets.partitions import model_partitions
from ml.io.lake import variant_dir
from ml.io.store import parquet_parts
from tests.dagster_helpers import ASSETS, CHECKS, evaluations, resources
from tests.model_helpers import hour_keys, pipeline_lake

pytestmark = pytest.mark.slow
K0, K1 = hour_keys(2)
VARIANT = "full-s0"
MODEL = ["moment_cross_model", "live_predictions"]


@dg.asset(partitions_def=model_partitions)
def model_anchor():
    """Does nothing: gives a checks-only run the model partitions (Dagster needs an asset)."""
    return dg.MaterializeResult()


def run(root, keys, variant, selection, raise_on_error=True):
    return dg.materialize(
        ASSETS + CHECKS,
        selection=dg.AssetSelection.assets(*selection),
        partition_key=dg.MultiPartitionKey({"hour": keys, "variant": variant}),
        resources=resources(root),
        raise_on_error=raise_on_error,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("models") / "home")
    lake = pipeline_lake(root, 4, 300, seed=9, outcomes=1)
    runs = [run(root, k, VARIANT, [*MODEL, "moment_cross_eval"]) for k in (K0,)]
    runs.append(run(root, K1, VARIANT, MODEL))
    return root, lake, runs


def test_training_and_evaluation_pass_their_checks(home):
    _root, lake, runs = home
    for r in runs:
        assert r.success
        assert evaluations(r) == {"live_predictions:progressive_validation": True}
    for key in (K0, K1):
        man = lake.manifest(variant_dir("moment_cross_model", VARIANT, key))
        assert man["variant"] == VARIANT and man["streams"] == ["moment"]
        assert man["counters"]["hours"] == (1 if key == K0 else 2)
        pred = lake.read_published(variant_dir("live_predictions", VARIANT, key))
        assert pred.num_rows == man["exposures_scored"] > 0
        p = pred.column("p_click").to_numpy()
        assert ((p > 0) & (p < 1)).all()


def test_evaluation_metadata_has_the_table_the_ceiling_and_plots(home):
    _, lake, runs = home
    meta = runs[0].asset_materializations_for_node("moment_cross_eval")[0].metadata
    assert "| click |" in meta["tasks"].value
    assert 0.5 < meta["oracle_click_auc"].value <= 1.0
    assert 0.0 <= meta["click_auc"].value <= 1.0
    for plot in ("calibration_plot", "auc_by_hour"):
        assert meta[plot].value.startswith("![plot](data:image/png;base64,iVBOR")
    man = lake.manifest(variant_dir("moment_cross_eval", VARIANT, K0))
    assert {r["task"] for r in man["tasks"]} >= {"click", "gift"}
    assert man["join"]["n_predictions_without_outcome"] == 0


def test_tensorboard_holds_losses_gradients_auc_pr_curves_and_hparams(home):
    root, _, _ = home
    train = EventAccumulator(f"{root}/tensorboard/{VARIANT}/train-{K1.replace(':', '')}")
    train.Reload()
    tags = train.Tags()
    assert {"loss/moment", "train/grad_norm", "train/lr"} <= set(tags["scalars"])
    assert any(t.startswith("weights/") for t in tags["histograms"])
    steps = [e.step for e in train.Scalars("loss/moment")]
    assert steps == sorted(steps) and steps[0] > 1  # continues after hour 0's steps
    ev = EventAccumulator(f"{root}/tensorboard/{VARIANT}/eval-{K0.replace(':', '')}")
    ev.Reload()
    assert {"auc/click", "auc/click_oracle", "logloss/click"} <= set(ev.Tags()["scalars"])
    assert "pr/click" in ev.Tags()["tensors"]
    assert np.isfinite(ev.Scalars("auc/click")[0].value)


def test_a_prediction_that_saw_the_future_fails_the_check(home):
    root, lake, _ = home
    rel = variant_dir("live_predictions", VARIANT, K1)
    man = lake.manifest(rel)
    files = {n: lake.read_bytes(f"{rel}/{n}") for n in man["files"]}
    meta = {k: v for k, v in man.items() if k != "files"}
    pred = lake.read_published(rel)
    i = pred.schema.get_field_index("model_max_emit_ms")
    later = pred.column("t0_ms").to_numpy() + 1
    # marked, so the tampered version has its own manifest digest (its failed verdict must
    # not bind to the restored original, whose files may have the same sizes)
    broken = parquet_parts(pred.set_column(i, "model_max_emit_ms", [later]))
    lake.publish(rel, broken, {**meta, "tampered": True})
    try:
        sel = dg.AssetSelection.checks(
            dg.AssetCheckKey(dg.AssetKey("live_predictions"), "progressive_validation")
        )
        r = dg.materialize(
            ASSETS + CHECKS, selection=sel | dg.AssetSelection.assets(*MODEL),
            partition_key=dg.MultiPartitionKey({"hour": K1, "variant": "no_cross-s0"}),
            resources=resources(root), raise_on_error=False,
        )  # fmt: skip
        assert not r.success  # no_cross-s0 has no hour 0: fails naming it
        failure = next(e for e in r.all_events if e.event_type_value == "STEP_FAILURE")
        assert "moment_cross_model 2026-01-01-00:00 (no_cross-s0) is not materialized" in (
            failure.event_specific_data.error.to_string()
        )
        check_only = dg.materialize(
            [*ASSETS, model_anchor, *CHECKS], selection=sel | dg.AssetSelection.assets(model_anchor),
            partition_key=dg.MultiPartitionKey({"hour": K1, "variant": VARIANT}),
            resources=resources(root), raise_on_error=False,
        )  # fmt: skip
        assert evaluations(check_only) == {"live_predictions:progressive_validation": False}
    finally:
        lake.publish(rel, files, meta)


def test_training_metadata_tables_and_speed_apart(home):
    _, lake, runs = home
    meta = runs[0].asset_materializations_for_node("moment_cross_training")
    by_key = {m.asset_key.to_user_string(): m.metadata for m in meta}
    model, pred = by_key["moment_cross_model"], by_key["live_predictions"]
    assert isinstance(model["speed/replay_samples_per_s"].value, int)
    assert "replay_samples_per_s" not in model
    published = lake.read_published(variant_dir("live_predictions", VARIANT, K0))
    cols = [c.name for c in pred["dagster/column_schema"].value.columns]
    assert cols == published.column_names and pred["dagster/row_count"].value == published.num_rows
    ev = runs[0].asset_materializations_for_node("moment_cross_eval")[0].metadata
    evaluation = lake.read_published(variant_dir("moment_cross_eval", VARIANT, K0))
    assert ev["dagster/row_count"].value == evaluation.num_rows > 0
    assert [c.name for c in ev["dagster/column_schema"].value.columns] == evaluation.column_names
    assert all(isinstance(ev[f"auc/{t}"].value, float) for t in ("click", "gift"))
