"""Evaluation plots as PNG bytes, for Dagster metadata and reports.

Figures are drawn on matplotlib's Agg canvas through ``matplotlib.figure.Figure`` rather
than pyplot: no global figure registry, no backend switch inside the caller's process, and
nothing left open between calls. PNG metadata is pinned (no Software tag, no timestamp), so
the same inputs give the same bytes on the same matplotlib version. NaN values leave gaps.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["auc_by_hour_plot", "bar_plot", "calibration_plot", "line_plot"]

_DPI = 100
_SIZE = (6.4, 4.0)
# Only what PNG needs; matplotlib would add a Software tag naming its version.
_METADATA = {"Software": None}


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata=_METADATA)
    return buf.getvalue()


def _finite(*arrays: np.ndarray) -> np.ndarray:
    return np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.zeros(0)


def _has_labels(ax) -> bool:
    return any(not h.get_label().startswith("_") for h in ax.get_lines())


def calibration_plot(bins_by_task: Mapping[str, Sequence], log: bool = True) -> bytes:
    """Reliability diagram: mean label against mean prediction per bin, one line per task.

    ``bins_by_task`` maps a task to ``CalibrationBins`` or any ``(mean_p, mean_y, ...)``
    sequence. Log axes (the default) because task rates span orders of magnitude (click
    ~1e-1, gift ~1e-3); bins with a zero mean label cannot show on them and are left out.
    """
    fig, ax = _figure()
    xs, ys = [], []
    for task, bins in bins_by_task.items():
        x = np.asarray(bins[0], dtype=np.float64)
        y = np.asarray(bins[1], dtype=np.float64)
        if log:
            keep = (x > 0) & (y > 0)
            x, y = np.where(keep, x, np.nan), np.where(keep, y, np.nan)
        ax.plot(x, y, marker="o", markersize=3, label=task)
        xs.append(x)
        ys.append(y)
    vals = _finite(*xs, *ys)
    lo, hi = (vals.min(), vals.max()) if len(vals) else (1e-3, 1.0)
    if log:
        lo = max(lo, 1e-6) / 1.5
        hi = min(max(hi * 1.5, lo * 10), 1.0)
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:
        lo, hi = 0.0, max(hi * 1.05, 1e-3)
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="0.5", linewidth=1, label="_ideal")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("mean prediction")
    ax.set_ylabel("observed rate")
    ax.set_title("Calibration (reliability diagram)")
    if _has_labels(ax):
        ax.legend(fontsize="small")
    return _png(fig)


def line_plot(
    x: Sequence,
    series: Mapping[str, Sequence[float]],
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
) -> bytes:
    """One line per entry of ``series`` over the shared ``x`` (numbers or category labels)."""
    fig, ax = _figure()
    labels = [str(v) for v in x]
    numeric = all(isinstance(v, int | float | np.integer | np.floating) for v in x)
    pos = np.asarray(x, dtype=np.float64) if numeric else np.arange(len(labels))
    for name, values in series.items():
        v = np.asarray(values, dtype=np.float64)
        if v.shape != pos.shape:
            raise ValueError(f"series {name!r} has {len(v)} values for {len(pos)} x values")
        ax.plot(pos, v, marker="o", markersize=3, label=name)
    if not numeric and len(labels):
        # Thin the category labels so hour stamps stay readable over long ranges.
        step = max(1, len(labels) // 12)
        ax.set_xticks(pos[::step], labels[::step], rotation=45, ha="right", fontsize="small")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if _has_labels(ax):
        ax.legend(fontsize="small")
    return _png(fig)


def auc_by_hour_plot(
    hours: Sequence[str], model_auc: Sequence[float], oracle_auc: Sequence[float]
) -> bytes:
    """Model click AUC per hour against the oracle's ceiling on the same exposures."""
    return line_plot(
        list(hours),
        {"model": list(model_auc), "oracle (ceiling)": list(oracle_auc)},
        title="Click AUC by hour",
        xlabel="hour",
        ylabel="AUC",
    )


def bar_plot(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str = "",
    ylabel: str = "",
    log: bool = False,
) -> bytes:
    """Grouped bars: one group per label, one bar per entry of ``series`` (e.g. the label
    rate of each task per stream, or rows per 5-minute bucket). ``log``: a log y axis, for
    rates that span orders of magnitude (zero bars are then left out)."""
    fig, ax = _figure()
    pos = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    positive = False
    for i, (name, values) in enumerate(series.items()):
        v = np.asarray(values, dtype=np.float64)
        if v.shape != pos.shape:
            raise ValueError(f"series {name!r} has {len(v)} values for {len(pos)} labels")
        if log:
            v = np.where(v > 0, v, np.nan)
            positive = positive or bool(np.isfinite(v).any())
        ax.bar(pos + (i - (len(series) - 1) / 2) * width, v, width, label=name)
    step = max(1, len(labels) // 12)
    ax.set_xticks(pos[::step], [str(x) for x in labels][::step], fontsize="small")
    if len(labels) > 6:
        ax.tick_params(axis="x", labelrotation=45)
    if positive:  # a log axis needs a value above zero
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    if len(series) > 1:
        ax.legend(fontsize="small")
    return _png(fig)
