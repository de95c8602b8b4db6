"""ContentCTR's study mechanics on a real simulated lake (its segment_windows built by the
hourly assets): every row × seed scores every window of every hour before training on
it, the pooled figures are content_evaluation's, a row beside others equals the row alone
(DeepCTR-Torch's baselines shuffle with torch's global random stream), and the claims are
computed as stated."""

import functools

import numpy as np
import pytest

from ml.evaluate import content_study
from ml.evaluate.ablation import VariantRun, summarize
from ml.evaluate.content_study import (
    ALL_ROWS,
    CONTENT_METRICS,
    TABLES,
    ContentStudyConfig,
    check_content_claims,
    run_content_study,
)
from ml.io.lake import partition_dir
from ml.models.content_baselines import BaselineConfig
from ml.train.publish import MissingPartitionError
from tests.model_helpers import H0, hour_keys, pipeline_lake

pytestmark = pytest.mark.slow
ROWS = ("id_wdl", "perceiver", "pair0", "no_visual")


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return pipeline_lake(str(tmp_path_factory.mktemp("cstudy") / "home"), 3, 600, seed=4)


@pytest.fixture(scope="module", autouse=True)
def small_baseline_batches():
    # A tiny world has a few dozen segments an hour: batches of 4 make the baselines take
    # several shuffled steps, so their order (torch's global random stream) matters.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(content_study, "BaselineConfig", functools.partial(BaselineConfig, batch_size=4))
        yield


@pytest.fixture(scope="module")
def runs(lake):
    return run_content_study(lake, H0, ContentStudyConfig(hours=3, warmup_hours=1, seeds=(0, 1),
                                                          rows=ROWS))  # fmt: skip


def test_every_row_and_seed_scores_every_window_of_every_hour(lake, runs):
    windows = [lake.read_published(partition_dir("segment_windows", k)) for k in hour_keys(3)]
    assert all(w.num_rows > 0 for w in windows)
    assert [(r.variant, r.seed) for r in runs] == [(r, s) for r in ROWS for s in (0, 1)]
    for r in runs:
        assert [h["windows"] for h in r.hourly] == [w.num_rows for w in windows]
        assert r.metrics["n"] == windows[1].num_rows + windows[2].num_rows  # after the warm-up
        assert -1 <= r.metrics["tau"] <= 1 and r.metrics["mae"] >= 0
    assert runs[2].metrics["tau"] != runs[3].metrics["tau"]  # seeds differ


def test_a_row_beside_others_equals_the_row_alone(lake, runs):
    for row in ("id_wdl", "pair0"):
        alone = run_content_study(
            lake, H0, ContentStudyConfig(hours=3, warmup_hours=1, seeds=(1,), rows=(row,))
        )[0]
        beside = next(r for r in runs if (r.variant, r.seed) == (row, 1))
        np.testing.assert_equal(alone.metrics, beside.metrics)
        np.testing.assert_equal(alone.hourly, beside.hourly)  # NaN tau (too few windows) too


def test_an_hour_without_windows_fails_naming_it(lake):
    with pytest.raises(MissingPartitionError, match="segment_windows 2026-01-01-03:00 is not"):
        run_content_study(lake, H0, ContentStudyConfig(hours=4, warmup_hours=1, seeds=(0,),
                                                       rows=("id_wdl",)))  # fmt: skip


def _summary(**taus):
    runs = [VariantRun(row, s, metrics={m: 0.0 for m, _ in CONTENT_METRICS} | {"tau": t, "n": 1.0})
            for row, ts in taus.items() for s, t in enumerate(ts)]  # fmt: skip
    return summarize(runs, CONTENT_METRICS)


def test_claims_compare_tau_as_stated():
    claims = check_content_claims(_summary(
        id_wdl=[0.10, 0.12], id_difm=[0.20, 0.22], perceiver=[0.40, 0.42],
        pair1=[0.38, 0.40], pair0=[0.30, 0.31], point_only=[0.35, 0.36],
        no_visual=[0.10, 0.11], no_text=[0.35, 0.36], no_streamer=[0.39, 0.40],
    ))  # fmt: skip
    assert [c["holds"] for c in claims] == [True, True, True]
    assert "perceiver − id_difm = +0.2000" in claims[0]["measured"]
    flipped = check_content_claims(_summary(
        id_difm=[0.40, 0.41], perceiver=[0.40, 0.42], pair1=[0.30], pair0=[0.31],
        point_only=[0.2], no_visual=[0.40], no_text=[0.1], no_streamer=[0.4],
    ))  # fmt: skip
    assert [c["holds"] for c in flipped] == [False, False, False]
    assert all(c["holds"] is None for c in check_content_claims(_summary(perceiver=[0.4])))


def test_the_tables_name_known_rows_and_the_config_refuses_unknown_ones():
    assert all(r in ALL_ROWS for rows in TABLES.values() for r in rows)
    with pytest.raises(ValueError, match="unknown rows"):
        ContentStudyConfig(rows=("perceiver", "nope"))
