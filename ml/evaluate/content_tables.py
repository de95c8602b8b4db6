"""ContentCTR's evaluation of one hour: content_predictions[H] (scores made before the
model trained on the hour) against their targets.

Windows overlap (a segment is in up to 20 of them), so the global figures take each
window's last segment — one prediction per segment, made by the window that ends with it
— and the per-window tau takes each window's 20 segments (the paper's view of a window).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ml.evaluate.content_metrics import (
    highlight_map,
    kendall_tau,
    kendall_tau_per_window,
    mae,
    mean_ratio,
)


def _matrix(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name).combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False).reshape(table.num_rows, -1)


def content_evaluation(predictions: pa.Table) -> dict:
    """{windows, segments, tau, tau_window_mean, tau_window_std, mae, avg_s_over_y,
    highlight_map} of an hour; NaN where the hour holds too little to say."""
    n = predictions.num_rows
    if n == 0:
        nan = float("nan")
        return dict(windows=0, segments=0, tau=nan, tau_window_mean=nan, tau_window_std=nan,
                    mae=nan, avg_s_over_y=nan, highlight_map=nan)  # fmt: skip
    s, y = _matrix(predictions, "p_ctr"), _matrix(predictions, "ctr")
    m = _matrix(predictions, "shows") > 0
    last_s, last_y = s[:, -1], y[:, -1]  # the window's last segment always has shows
    per_window = kendall_tau_per_window(s, y, m)
    defined = per_window[~np.isnan(per_window)]
    room = predictions.column("room_id").to_numpy()
    return {
        "windows": n,
        "segments": int(m.sum()),
        "tau": kendall_tau(last_s, last_y),
        "tau_window_mean": float(defined.mean()) if len(defined) else float("nan"),
        "tau_window_std": float(defined.std()) if len(defined) else float("nan"),
        "mae": mae(last_s, last_y),
        "avg_s_over_y": mean_ratio(last_s, last_y),
        "highlight_map": highlight_map(last_s, last_y, room),
    }
