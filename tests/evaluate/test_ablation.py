"""The ablation's mechanics on a real simulated lake: every variant × seed scores every
exposure of every hour, the oracle row is the simulator's truth on the same exposures,
trainers run side by side give what each gives alone, and the summary and the claims are
computed from the runs as stated (mean, sd ddof 1, the larger spread of the two rows)."""

import numpy as np
import pyarrow as pa
import pytest

from ml.evaluate import metrics as M
from ml.evaluate.ablation import (
    METRICS,
    ORACLE,
    AblationConfig,
    VariantRun,
    oracle_metrics,
    run_ablation,
    summarize,
)
from ml.evaluate.ablation_report import check_claims, claims_markdown, table_markdown
from ml.hours import HOUR_MS
from ml.io.lake import partition_dir
from ml.train.publish import MissingPartitionError
from tests.model_helpers import H0, hour_keys, pipeline_lake

pytestmark = pytest.mark.slow
METRIC_KEYS = [m for m, _ in METRICS]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    # 2 trained hours with final outcomes (3 look-ahead hours simulated beyond them)
    return pipeline_lake(str(tmp_path_factory.mktemp("abl") / "home"), 5, 400, seed=3, outcomes=2)


@pytest.fixture(scope="module")
def runs(lake):
    cfg = AblationConfig(hours=2, warmup_hours=1, seeds=(0, 1), variants=("full", "deepctr_ple"))
    return run_ablation(lake, lake, H0, cfg)


def test_every_run_scores_every_exposure_of_every_hour(lake, runs):
    assert [(r.variant, r.seed) for r in runs] == [
        ("full", 0), ("full", 1), ("deepctr_ple", 0), ("deepctr_ple", 1), (ORACLE, 0),
    ]  # fmt: skip
    outcomes = lake.read_published(partition_dir("live_outcomes", hour_keys(2)[1]))
    t0 = outcomes.column("t0_ms").to_numpy()
    h1 = H0 + HOUR_MS  # the evaluated hour (after the warm-up); late impressions not scored
    in_hour = int(((t0 >= h1) & (t0 < h1 + HOUR_MS)).sum())
    assert 0 < in_hour <= outcomes.num_rows
    for r in runs:
        assert [h["hour"] for h in r.hourly] == hour_keys(2)
        assert r.metrics["n"] == in_hour
        assert set(METRIC_KEYS) <= set(r.metrics)
        if r.variant != ORACLE:
            assert r.samples > 0
            assert np.isfinite([r.metrics[m] for m in ("click_auc", "click_gauc")]).all()


def test_a_run_beside_others_equals_the_run_alone(lake, runs):
    alone = run_ablation(lake, lake, H0, AblationConfig(2, 1, seeds=(1,), variants=("full",)))
    np.testing.assert_equal(alone[0].metrics, runs[1].metrics)  # NaN (no cohort rows) too
    assert alone[0].hourly == runs[1].hourly
    assert alone[0].samples == runs[1].samples


def test_seeds_differ_and_the_oracle_is_the_truth_on_the_same_exposures(runs):
    assert runs[0].metrics["click_auc"] != runs[1].metrics["click_auc"]
    oracle = runs[-1]
    assert oracle.metrics["click_auc"] > 0.6  # the simulator's P(enter): far above chance
    assert np.isnan(oracle.metrics["gift_calibration"])  # it knows click only
    assert oracle.hourly[1]["click_auc"] == runs[0].hourly[1]["oracle_auc"]


def test_oracle_metrics_are_auc_and_gauc_of_the_oracle_column():
    rng = np.random.default_rng(0)
    n = 400
    users = rng.integers(0, 30, n)
    q = rng.random(n)
    y = (rng.random(n) < q).astype(np.float64)
    q_null = q.copy()
    q_null[:10] = np.nan  # unmatched exposures are left out
    t = pa.table({
        "user_id": users, "y_click": y,
        "oracle_p_enter": pa.array(q_null, mask=np.isnan(q_null)),
        "low_live_cohort": users < 10,
    })  # fmt: skip
    m = oracle_metrics(t)
    keep = slice(10, None)
    assert m["click_auc"] == pytest.approx(M.auc(y[keep], q[keep]))
    assert m["click_gauc"] == pytest.approx(M.gauc(y[keep], q[keep], users[keep]))
    low = users[keep] < 10
    assert m["low_click_auc"] == pytest.approx(M.auc(y[keep][low], q[keep][low]))
    assert m["n"] == n - 10


def _run(variant, seed, **metrics):
    base = dict.fromkeys(METRIC_KEYS, 0.5) | {"n": 100.0, "gift_calibration": 1.0}
    return VariantRun(variant, seed, metrics=base | metrics)


def test_summary_is_mean_and_sample_sd_over_seeds():
    rows = summarize([_run("full", 0, click_auc=0.70), _run("full", 1, click_auc=0.72),
                      _run("full", 2, click_auc=0.74), _run(ORACLE, 0, click_auc=0.8)])  # fmt: skip
    full, oracle = rows
    assert full["click_auc"] == pytest.approx(0.72)
    assert full["click_auc_sd"] == pytest.approx(np.std([0.70, 0.72, 0.74], ddof=1))
    assert (oracle["seeds"], oracle["click_auc_sd"]) == (1, 0.0)
    md = table_markdown(rows)
    assert "0.7200 ± 0.0200" in md and "| oracle | 0.8000 |" in md


def test_claims_compare_means_against_the_larger_spread():
    def rows(**by_variant):
        return summarize(
            [_run(v, s, **kw) for v, kws in by_variant.items() for s, kw in enumerate(kws)]
        )

    same = [{"click_auc": 0.70, "low_click_gauc": 0.6}, {"click_auc": 0.72, "low_click_gauc": 0.6}]
    lower = [{"click_auc": 0.60, "low_click_gauc": 0.5}, {"click_auc": 0.62, "low_click_gauc": 0.5}]
    near = [{"click_auc": 0.705}, {"click_auc": 0.715}]
    claims = check_claims(rows(
        full=same, no_cross=lower, stale_5m=near, deepctr_ple=lower,
        fast_slow=[{"gift_calibration": 1.2}, {"gift_calibration": 1.2}],
        fast_only=[{"gift_calibration": 2.0}, {"gift_calibration": 2.0}],
        oracle=[{"click_auc": 0.725}],
    ))  # fmt: skip
    holds = {c["claim"][0]: c["holds"] for c in claims}
    # 1: 0.725 - 0.71 <= 0.02; 2, 6: a 0.1 lift over sd 0.0141; 3: 0.0 lift is no lift;
    # 4: |1.2-1| < |2-1|; 5: full 0.71 >= fast_slow's 0.5
    assert holds == {"1": True, "2": True, "3": False, "4": True, "5": True, "6": True}
    missing = check_claims(rows(full=same))
    assert all(c["holds"] is None and "not run" in c["measured"] for c in missing)
    assert "| – |" in claims_markdown(missing)


def test_the_config_refuses_unknown_variants_and_a_warmup_as_long_as_the_study():
    with pytest.raises(ValueError, match="unknown variants"):
        AblationConfig(variants=("full", "nope"))
    with pytest.raises(ValueError, match="warm-up"):
        AblationConfig(hours=3, warmup_hours=3)


def test_an_hour_without_final_outcomes_fails_naming_it(lake):
    with pytest.raises(MissingPartitionError, match="live_outcomes 2026-01-01-02:00 is not"):
        run_ablation(lake, lake, H0, AblationConfig(3, 1, seeds=(0,), variants=("no_cross",)))


def test_the_input_probe_reads_the_hours_exposures_with_their_final_labels(lake):
    from ml.evaluate.input_probe import hour_features, probe
    from ml.train.stream import StreamTrainer
    from ml.train.variants import variant_configs

    trainer = StreamTrainer(*variant_configs("full-s0"))
    x, y, q = hour_features(lake, trainer, H0 + HOUR_MS, H0)
    outcomes = lake.read_published(partition_dir("live_outcomes", hour_keys(2)[1]))
    t0 = outcomes.column("t0_ms").to_numpy()
    in_hour = (t0 >= H0 + HOUR_MS) & (t0 < H0 + 2 * HOUR_MS)
    assert x.shape == (in_hour.sum(), 12 + 8 + 3 + 2 * 5) and len(y) == len(q) == len(x)
    assert y.sum() == outcomes.column("y_click").to_numpy()[in_hour].sum()  # final labels
    assert np.isfinite(q).all() and ((q > 0) & (q < 1)).all()  # the oracle matched them all
    out = probe(lake, H0, 2, 1)
    assert out["scored_exposures"] == len(y) and 0 <= out["trees_click_auc"] <= 1
    assert out["oracle_click_auc"] == pytest.approx(M.auc(y, q))
