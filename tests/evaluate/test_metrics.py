"""ml.evaluate.metrics against scikit-learn on many random cases, and the edge cases."""

import numpy as np
import pytest
import sklearn.calibration as sk_cal
import sklearn.metrics as sk

from ml.evaluate import metrics as M


def _cases(n_cases=150, seed=0):
    """Random binary cases: sizes 2..400, rates from very rare to very common, scores from
    continuous to three distinct values (heavy ties), float32 or float64."""
    rng = np.random.default_rng(seed)
    for i in range(n_cases):
        n = int(rng.integers(2, 400))
        rate = float(rng.choice([0.005, 0.05, 0.3, 0.5, 0.9]))
        y = (rng.random(n) < rate).astype(np.int8)
        decimals = int(rng.integers(0, 4)) if i % 3 else 8
        p = np.round(rng.random(n) * 0.5 + 0.4 * y * rng.random(n), decimals)
        if i % 5 == 0:
            p = p.astype(np.float32)
        w = rng.random(n) * 3
        yield y, p, w, rng


def _both_classes(y):
    return 0 < y.sum() < len(y)


def test_auc_matches_sklearn_with_ties_and_weights():
    checked = 0
    for y, p, w, _ in _cases():
        if not _both_classes(y):
            assert np.isnan(M.auc(y, p))
            continue
        assert M.auc(y, p) == pytest.approx(sk.roc_auc_score(y, p), abs=1e-12)
        assert M.auc(y, p, w) == pytest.approx(sk.roc_auc_score(y, p, sample_weight=w), abs=1e-12)
        checked += 1
    assert checked > 100


def test_auc_known_values():
    assert M.auc([0, 1], [0.1, 0.9]) == 1.0
    assert M.auc([0, 1], [0.9, 0.1]) == 0.0
    assert M.auc([0, 1, 0, 1], [0.5] * 4) == 0.5  # all tied: one half per pair
    assert M.auc([True, False, True], [0.2, 0.2, 0.7]) == 0.75


def test_auc_edge_cases():
    assert np.isnan(M.auc([], []))
    assert np.isnan(M.auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert np.isnan(M.auc([0, 0], [0.1, 0.2]))
    assert np.isnan(M.auc([0, 1], [np.nan, 0.2]))
    with pytest.raises(ValueError):
        M.auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        M.auc([0, 1, 1], [0.1, 0.2])


def _gauc_loop(y, p, g, w=None):
    """The reference: sklearn's AUC per group, a plain loop; returns (unweighted, weighted)."""
    w = np.ones(len(y)) if w is None else w
    aucs, counts, weights = [], [], []
    for k in np.unique(g):
        m = g == k
        if _both_classes(y[m]):
            aucs.append(sk.roc_auc_score(y[m], p[m]))
            counts.append(m.sum())
            weights.append(w[m].sum())
    if not aucs:
        return np.nan, np.nan
    return np.average(aucs, weights=counts), np.average(aucs, weights=weights)


def test_gauc_matches_per_group_loop():
    checked = 0
    for y, p, w, rng in _cases(n_cases=80, seed=1):
        n_groups = int(rng.integers(1, 25))
        g = rng.integers(0, n_groups, len(y)) * 7919  # sparse ids, unsorted
        want, want_w = _gauc_loop(y, p, g, w)
        if np.isnan(want):
            assert np.isnan(M.gauc(y, p, g))
            continue
        assert M.gauc(y, p, g) == pytest.approx(want, abs=1e-12)
        assert M.gauc(y, p, g, w) == pytest.approx(want_w, abs=1e-12)
        checked += 1
    assert checked > 40


def test_gauc_string_groups_and_permutation_invariance():
    rng = np.random.default_rng(2)
    n = 500
    y = (rng.random(n) < 0.3).astype(int)
    p = np.round(rng.random(n), 1)
    g = rng.choice(np.array(["u1", "u2", "u3", "u10"]), n)
    want, _ = _gauc_loop(y, p, g)
    assert M.gauc(y, p, g) == pytest.approx(want, abs=1e-12)
    perm = rng.permutation(n)
    assert M.gauc(y[perm], p[perm], g[perm]) == pytest.approx(want, abs=1e-12)


def test_gauc_weighting_and_edge_cases():
    # Group a: AUC 1 with 2 rows; group b: AUC 0 with 4 rows; group c single class, skipped.
    y = np.array([0, 1, 0, 1, 0, 1, 1, 1])
    p = np.array([0.1, 0.9, 0.9, 0.1, 0.8, 0.2, 0.5, 0.6])
    g = np.array(["a", "a", "b", "b", "b", "b", "c", "c"])
    assert M.gauc(y, p, g) == pytest.approx((2 * 1.0 + 4 * 0.0) / 6)
    assert np.isnan(M.gauc([], [], []))
    assert np.isnan(M.gauc([1, 0], [0.2, 0.1], [1, 2]))  # every group single-class
    assert np.isnan(M.gauc([1, 0], [np.nan, 0.1], [1, 1]))
    # One group: GAUC is that group's AUC.
    assert M.gauc([0, 1, 1], [0.3, 0.2, 0.4], [5, 5, 5]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        M.gauc([0, 1], [0.1, 0.2], [1])


def test_logloss_matches_sklearn():
    eps = 1e-7
    for y, p, w, rng in _cases(seed=3):
        p = p.astype(np.float64)
        p[rng.random(len(p)) < 0.05] = 0.0  # clipping matters
        p[rng.random(len(p)) < 0.05] = 1.0
        clipped = np.clip(p, eps, 1 - eps)
        want = sk.log_loss(y, clipped, labels=[0, 1])
        assert M.logloss(y, p, eps=eps) == pytest.approx(want, rel=1e-10)
        want_w = sk.log_loss(y, clipped, labels=[0, 1], sample_weight=w)
        assert M.logloss(y, p, eps=eps, weights=w) == pytest.approx(want_w, rel=1e-10)
    assert np.isnan(M.logloss([], []))
    assert M.logloss([1], [1.0]) == pytest.approx(-np.log(1 - 1e-7))
    assert np.isfinite(M.logloss([1], [0.0]))


def test_calibration():
    assert M.calibration([0, 1, 0, 1], [0.25, 0.25, 0.25, 0.25]) == pytest.approx(0.5)
    assert M.calibration([0, 0, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(2.0)
    assert M.calibration([0, 1], [0.1, 0.5], weights=[3, 1]) == pytest.approx(0.8 / 1.0)
    assert np.isnan(M.calibration([0, 0], [0.1, 0.2]))
    assert np.isnan(M.calibration([], []))


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_calibration_bins_match_sklearn(strategy):
    for y, p, _, _ in _cases(n_cases=60, seed=4):
        p = np.clip(p, 0, 1)
        bins = M.calibration_bins(y, p, n_bins=10, strategy=strategy)
        prob_true, prob_pred = sk_cal.calibration_curve(y, p, n_bins=10, strategy=strategy)
        np.testing.assert_allclose(bins.mean_y, prob_true, atol=1e-12)
        np.testing.assert_allclose(bins.mean_p, prob_pred, atol=1e-12)
        assert bins.count.sum() == len(y)
        assert np.all(np.diff(bins.mean_p) >= 0)


def test_calibration_bins_edge_cases():
    b = M.calibration_bins([], [])
    assert len(b.mean_p) == len(b.mean_y) == len(b.count) == 0
    b = M.calibration_bins([0, 1, 1, 0], [0.2] * 4)  # all ties: one bin
    assert b.count.tolist() == [4] and b.mean_y.tolist() == [0.5]
    b = M.calibration_bins([0, 1, 1], [0.2, np.nan, 0.4])
    assert b.count.sum() == 2
    with pytest.raises(ValueError):
        M.calibration_bins([0, 1], [0.1, 0.2], strategy="bogus")


def test_pr_curve_matches_sklearn():
    for y, p, w, _ in _cases(seed=5):
        if not y.any():
            continue
        for weights in (None, w):
            want = sk.precision_recall_curve(y, p, sample_weight=weights)
            got = M.pr_curve(y, p, weights)
            for a, b in zip(got, want, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_pr_curve_edge_cases():
    precision, recall, thresholds = M.pr_curve([], [])
    assert precision.tolist() == [1.0] and recall.tolist() == [0.0] and len(thresholds) == 0
    with pytest.warns(UserWarning):
        want = sk.precision_recall_curve([0, 0, 0], [0.1, 0.5, 0.5])
    for a, b in zip(M.pr_curve([0, 0, 0], [0.1, 0.5, 0.5]), want, strict=True):
        np.testing.assert_allclose(a, b)
    with pytest.raises(ValueError):
        M.pr_curve([0, 1], [np.nan, 0.3])


def test_large_input_is_fast():
    rng = np.random.default_rng(6)
    n = 1_000_000
    y = rng.random(n) < 0.05
    p = rng.random(n).astype(np.float32)
    g = rng.integers(0, 50_000, n)
    a = M.auc(y, p)
    assert 0.49 < a < 0.51
    assert 0.45 < M.gauc(y, p, g) < 0.55
