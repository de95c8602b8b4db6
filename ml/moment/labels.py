"""The three label streams of DESIGN §7.1 and the final outcomes, from exposure timelines.

Every sample carries the time it is emitted (``emit_ms``) and the report-time cutoff its
labels reflect (``label_cutoff_ms`` <= ``emit_ms``): nothing reported later is used.
Samples are partitioned by emission hour. Per task: ``y_<task>`` (0/1) and ``m_<task>``
(True when the task is labelled in this sample, False when masked).

* fast (emitted at t0 + 5 min): every task; positive iff reported by then. BCE.
* slow (emitted at t0 + 1 h): only tasks whose first positive was reported in
  (t0 + 5 min, t0 + 1 h] — the fast stream's false negatives — labelled 1, the rest
  masked; exposures with none emit nothing. Trained with the PU correction.
* moment (30 s stream, first-only mask): for each task, a sample at its first positive
  report (that task 1, others masked); one exit sample when the session ends (the exit is
  reported; or t0 + 30 s without an enter; or the watch cap) labelling every task that
  has not turned positive 0, reported positives masked. Each exposure gets exactly one
  label per task.

A sample cannot be emitted before its impression is known, so emission is
``max(window end, impression report time)``; the labels still use the window's cutoff.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ml.moment.sessions import NEVER, TASKS

FAST_WINDOW_MS = 5 * 60_000
SLOW_WINDOW_MS = 3_600_000
CLICK_WINDOW_MS = 30_000  # moment: no enter reported by then = the user scrolled on
WATCH_CAP_MS = 3_600_000  # moment: a session that never reports its exit ends here

SAMPLE_SCHEMA = pa.schema(
    [
        ("exposure_id", pa.string()),
        ("user_id", pa.int64()),
        ("room_id", pa.int64()),
        ("t0_ms", pa.int64()),
        ("emit_ms", pa.int64()),
        ("label_cutoff_ms", pa.int64()),
        ("kind", pa.string()),  # fast | slow | first_positive | exit | no_enter
        *[(f"y_{t}", pa.int8()) for t in TASKS],
        *[(f"m_{t}", pa.bool_()) for t in TASKS],
    ]
)

OUTCOME_SCHEMA = pa.schema(
    [
        ("exposure_id", pa.string()),
        ("user_id", pa.int64()),
        ("room_id", pa.int64()),
        ("t0_ms", pa.int64()),
        ("impression_report_ms", pa.int64()),
        *[(f"y_{t}", pa.int8()) for t in TASKS],
        *[(f"delay_{t}_ms", pa.int64()) for t in TASKS],  # first report - t0; null if negative
        ("watch_ms", pa.int64()),
    ]
)


def _cols(tl: pa.Table) -> dict[str, np.ndarray]:
    """The numeric timeline columns as numpy (ids stay in Arrow: no Python strings)."""
    return {f.name: tl.column(f.name).to_numpy() for f in tl.schema if pa.types.is_integer(f.type)}


def _table(tl: pa.Table, rows: np.ndarray, emit, cutoff, kind, y: dict, m: dict) -> pa.Table:
    take = pa.array(rows, pa.int64())
    cols = {
        "exposure_id": tl.column("exposure_id").take(take),
        "user_id": tl.column("user_id").take(take),
        "room_id": tl.column("room_id").take(take),
        "t0_ms": tl.column("t0_ms").take(take),
        "emit_ms": np.asarray(emit, np.int64),
        "label_cutoff_ms": np.asarray(cutoff, np.int64),
        "kind": pa.array(np.broadcast_to(np.asarray(kind, object), len(rows)), pa.string()),
    }
    cols.update({f"y_{t}": np.asarray(y[t], np.int8) for t in TASKS})
    cols.update({f"m_{t}": np.asarray(m[t], bool) for t in TASKS})
    return pa.table(cols, schema=SAMPLE_SCHEMA)


def _in(emit: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return (emit >= lo) & (emit < hi)


def fast_samples(tl: pa.Table, lo: int, hi: int) -> pa.Table:
    c = _cols(tl)
    cutoff = c["t0_ms"] + FAST_WINDOW_MS
    emit = np.maximum(cutoff, c["impression_report_ms"])
    rows = np.flatnonzero(_in(emit, lo, hi))
    y = {t: c[f"first_{t}_report_ms"][rows] <= cutoff[rows] for t in TASKS}
    m = {t: np.ones(len(rows), bool) for t in TASKS}
    return _sorted(_table(tl, rows, emit[rows], cutoff[rows], "fast", y, m))


def slow_samples(tl: pa.Table, lo: int, hi: int) -> pa.Table:
    c = _cols(tl)
    t0 = c["t0_ms"]
    cutoff = t0 + SLOW_WINDOW_MS
    emit = np.maximum(cutoff, c["impression_report_ms"])
    missing = {
        t: (c[f"first_{t}_report_ms"] > t0 + FAST_WINDOW_MS) & (c[f"first_{t}_report_ms"] <= cutoff)
        for t in TASKS
    }
    any_missing = np.any([missing[t] for t in TASKS], axis=0)
    rows = np.flatnonzero(_in(emit, lo, hi) & any_missing)
    y = {t: missing[t][rows] for t in TASKS}
    return _sorted(_table(tl, rows, emit[rows], cutoff[rows], "slow", y, y))


def session_end(c: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(report time the moment session ends, whether it was entered in time)."""
    t0 = c["t0_ms"]
    entered = c["first_click_report_ms"] <= t0 + CLICK_WINDOW_MS
    cap = t0 + WATCH_CAP_MS
    end = np.where(entered, np.minimum(c["exit_report_ms"], cap), t0 + CLICK_WINDOW_MS)
    return end, entered


def moment_samples(tl: pa.Table, lo: int, hi: int) -> pa.Table:
    c = _cols(tl)
    end, entered = session_end(c)
    r_imp = c["impression_report_ms"]
    parts = []
    positive = {t: c[f"first_{t}_report_ms"] <= end for t in TASKS}
    for task in TASKS:
        p = c[f"first_{task}_report_ms"]
        emit = np.maximum(p, r_imp)
        rows = np.flatnonzero(positive[task] & _in(emit, lo, hi))
        y = {t: np.full(len(rows), t == task) for t in TASKS}
        m = {t: np.full(len(rows), t == task) for t in TASKS}
        parts.append(_table(tl, rows, emit[rows], p[rows], "first_positive", y, m))
    emit = np.maximum(end, r_imp)
    unlabelled = ~np.all([positive[t] for t in TASKS], axis=0)
    rows = np.flatnonzero(unlabelled & _in(emit, lo, hi))
    kind = np.where(entered[rows], "exit", "no_enter")
    y = {t: np.zeros(len(rows), bool) for t in TASKS}
    m = {t: ~positive[t][rows] for t in TASKS}
    parts.append(_table(tl, rows, emit[rows], end[rows], kind, y, m))
    return _sorted(pa.concat_tables(parts))


def outcomes(tl: pa.Table) -> pa.Table:
    """Final labels per exposure (every attributed positive, however late). Evaluation only."""
    c = _cols(tl)
    t0 = c["t0_ms"]
    cols = {
        "exposure_id": tl.column("exposure_id"),
        "user_id": c["user_id"],
        "room_id": c["room_id"],
        "t0_ms": t0,
        "impression_report_ms": c["impression_report_ms"],
    }
    for t in TASKS:
        first = c[f"first_{t}_report_ms"]
        pos = first != NEVER
        cols[f"y_{t}"] = pos.astype(np.int8)
        cols[f"delay_{t}_ms"] = pa.array(np.where(pos, first - t0, 0), pa.int64(), mask=~pos)
    cols["watch_ms"] = c["watch_ms"]
    return pa.table(cols, schema=OUTCOME_SCHEMA)


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by(
        [("emit_ms", "ascending"), ("exposure_id", "ascending"), ("kind", "ascending")]
    )
