"""ml.evaluate.plots: valid, decodable, deterministic PNGs, NaNs included."""

import io

import numpy as np
import pytest
from matplotlib import image as mpimg

from ml.evaluate import plots as P
from ml.evaluate.metrics import CalibrationBins, calibration_bins

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(data: bytes) -> np.ndarray:
    assert isinstance(data, bytes) and data.startswith(PNG_MAGIC)
    img = mpimg.imread(io.BytesIO(data), format="png")
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    return img


def _bins():
    rng = np.random.default_rng(0)
    out = {}
    for task, rate in (("click", 0.2), ("gift", 0.01)):
        p = rng.random(2000) * 2 * rate
        y = rng.random(2000) < p
        out[task] = calibration_bins(y, p, n_bins=8)
    return out


def test_calibration_plot_png_and_deterministic():
    bins = _bins()
    a = P.calibration_plot(bins)
    _check_png(a)
    assert P.calibration_plot(bins) == a
    _check_png(P.calibration_plot(bins, log=False))
    assert b"Software" not in a[:4096]


def test_calibration_plot_nan_zero_and_empty():
    nan_bins = CalibrationBins(np.array([0.1, np.nan, 0.0]), np.array([0.0, 0.2, 0.3]), [1, 2, 3])
    empty = calibration_bins([], [])
    _check_png(P.calibration_plot({"click": nan_bins, "like": empty}))
    _check_png(P.calibration_plot({"click": ([np.nan], [np.nan], [1])}))
    _check_png(P.calibration_plot({}))
    _check_png(P.calibration_plot({"click": empty}, log=False))


def test_auc_by_hour_plot():
    hours = [f"2024-01-01-{h:02d}:00" for h in range(30)]
    model = list(np.linspace(0.6, 0.7, 30))
    oracle = [0.8] * 30
    model[3] = float("nan")
    a = P.auc_by_hour_plot(hours, model, oracle)
    _check_png(a)
    assert P.auc_by_hour_plot(hours, model, oracle) == a
    assert P.auc_by_hour_plot(hours, model, [0.81] * 30) != a
    _check_png(P.auc_by_hour_plot([], [], []))
    _check_png(P.auc_by_hour_plot(["h"], [float("nan")], [float("nan")]))


def test_line_plot():
    png = P.line_plot([1, 2, 3], {"a": [0.1, np.nan, 0.3], "b": [1, 2, 3]}, "t", "x", "y")
    _check_png(png)
    _check_png(P.line_plot(np.arange(4), {"a": np.ones(4)}))
    _check_png(P.line_plot([0, 1], {}))
    with pytest.raises(ValueError):
        P.line_plot([1, 2], {"a": [1.0]})


def test_bar_plot():
    tasks = ["click", "long_view", "like", "comment", "follow", "gift"]
    rates = {"fast": [0.1, 0.05, 0.01, 0.003, 0.0, 0.001], "slow": [0.12, 0.06, 0.02, 0, 0, 0]}
    a = P.bar_plot(tasks, rates, "label rate", "rate", log=True)
    _check_png(a)
    assert P.bar_plot(tasks, rates, "label rate", "rate", log=True) == a
    _check_png(P.bar_plot([f"{m:02d}" for m in range(0, 60, 5)], {"rows": np.arange(12)}))
    _check_png(P.bar_plot([], {}))
    _check_png(P.bar_plot(["a"], {"x": [0.0]}, log=True))
    with pytest.raises(ValueError):
        P.bar_plot(["a", "b"], {"x": [1.0]})
