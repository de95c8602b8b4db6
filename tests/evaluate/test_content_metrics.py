"""ContentCTR metrics against scipy / scikit-learn on random cases (ties included)."""

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import average_precision_score

from ml.evaluate.content_metrics import (
    highlight_map,
    kendall_tau,
    kendall_tau_per_window,
    mae,
    mean_ratio,
)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [None, 5])  # continuous, or heavy ties
def test_global_tau_is_scipys_tau_b(seed, levels):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 3000))
    s, y = rng.random(n), rng.random(n)
    if levels:
        s, y = np.round(s * levels), np.round(y * levels)
    want = kendalltau(s, y).statistic  # variant "b" by default
    assert kendall_tau(s, y) == pytest.approx(want, abs=1e-12)


def test_global_tau_edge_cases():
    assert np.isnan(kendall_tau([1.0], [2.0]))
    assert np.isnan(kendall_tau([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # all tied in s
    assert np.isnan(kendall_tau([1.0, np.nan], [1.0, 2.0]))
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau([1, 2, 3], [30, 20, 10]) == -1.0


def test_per_window_tau_is_scipys_on_each_windows_segments_with_a_target():
    rng = np.random.default_rng(7)
    s = np.round(rng.random((40, 20)) * 8)
    y = np.round(rng.random((40, 20)) * 6)
    m = rng.random((40, 20)) < 0.8
    m[0] = False
    m[1, 1:] = False  # one segment: undefined
    got = kendall_tau_per_window(s, y, m)
    assert np.isnan(got[0]) and np.isnan(got[1])
    for i in range(2, 40):
        want = kendalltau(s[i][m[i]], y[i][m[i]]).statistic
        assert got[i] == pytest.approx(want, abs=1e-12) or (np.isnan(want) and np.isnan(got[i]))


def test_mae_ratio_and_highlight_map():
    rng = np.random.default_rng(8)
    s, y = rng.random(200), rng.random(200)
    room = rng.integers(0, 7, 200)
    assert mae(s, y) == pytest.approx(np.abs(s - y).mean())
    assert mean_ratio(s, y) == pytest.approx(s.mean() / y.mean())
    assert np.isnan(mean_ratio(s, np.zeros(200)))
    aps = []
    for r in np.unique(room):
        yy, ss = y[room == r], s[room == r]
        k = max(1, round(0.3 * len(yy)))
        relevant = yy >= np.sort(yy)[::-1][k - 1]
        aps.append(average_precision_score(relevant, ss))
    assert highlight_map(s, y, room) == pytest.approx(np.mean(aps))
    assert highlight_map(y, y, room) == pytest.approx(1.0)  # the truth ranks them first
