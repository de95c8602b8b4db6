"""Evaluation stage (DESIGN §8): metrics, the prequential hour report and its plots.

``plots`` is not imported here: it pulls in matplotlib, which the metric and table code
does not need (import ``ml.evaluate.plots`` where figures are drawn).
"""

from ml.evaluate.metrics import (
    CalibrationBins,
    auc,
    calibration,
    calibration_bins,
    gauc,
    logloss,
    pr_curve,
)
from ml.evaluate.tables import (
    JoinResult,
    calibration_bins_by_task,
    evaluate_hour,
    join_predictions,
    markdown_table,
    report_markdown,
)

__all__ = [
    "CalibrationBins",
    "JoinResult",
    "auc",
    "calibration",
    "calibration_bins",
    "calibration_bins_by_task",
    "evaluate_hour",
    "gauc",
    "join_predictions",
    "logloss",
    "markdown_table",
    "pr_curve",
    "report_markdown",
]
