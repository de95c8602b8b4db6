"""Prequential evaluation of one hour (DESIGN §8): predictions joined with final labels.

``live_predictions[H]`` holds each exposure's scores from the model as it stood before any
sample emitted after the exposure's t0 (§7.5); ``live_outcomes[H]`` holds its final labels.
``join_predictions`` pairs them by ``exposure_id`` and, where given, attaches the
simulator's true click probability (the ceiling) and the user's live-activity cohort;
``evaluate_hour`` turns the joined table into per-task, oracle and cohort rows that
``markdown_table`` renders for Dagster metadata. Every row that does not pair up is
counted, never silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml.evaluate import metrics as M
from ml.schema import TASKS

__all__ = [
    "COHORT_COLUMNS",
    "ORACLE_COLUMNS",
    "TASK_COLUMNS",
    "JoinResult",
    "calibration_bins_by_task",
    "evaluate_hour",
    "join_predictions",
    "markdown_table",
    "report_markdown",
]

ORACLE_P = "oracle_p_enter"
COHORT = "low_live_cohort"
_KEYS = ("user_id", "room_id", "t0_ms")
_ORACLE_KEYS = ("user_id", "item_id", "event_time_ms")

TASK_COLUMNS = (
    "task", "n", "positive_rate", "mean_p", "auc", "gauc", "logloss", "calibration",
)  # fmt: skip
ORACLE_COLUMNS = (
    "n_matched", "oracle_auc", "model_auc", "oracle_gauc", "model_gauc",
    "oracle_logloss", "model_logloss",
)  # fmt: skip
COHORT_COLUMNS = ("cohort", "n", "positive_rate", "auc", "gauc")


@dataclass(frozen=True)
class JoinResult:
    """The joined table and how many rows of each input paired up."""

    table: pa.Table
    n_predictions: int
    n_outcomes: int
    n_joined: int
    n_predictions_without_outcome: int
    n_outcomes_without_prediction: int
    # Repeated exposure_ids: only the first row of each id is joined.
    n_duplicate_predictions: int
    n_duplicate_outcomes: int
    # Joined pairs whose user/room/t0 disagree; the prediction's values are kept.
    n_key_mismatch: int
    # None when the oracle / cohort table was not given.
    n_oracle_matched: int | None = None
    n_oracle_duplicates: int | None = None
    n_cohort_matched: int | None = None

    def counts(self) -> dict[str, int | None]:
        """Every count, for metadata (the table left out)."""
        d = asdict(self)
        del d["table"]
        return d


def _first_rows(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Row indices without repeats: each id's first row, and every null-id row."""
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    first = pc.index_in(ids, value_set=ids, skip_nulls=True)
    idx = first.to_numpy(zero_copy_only=False)
    rows = np.arange(len(ids))
    valid = pc.is_valid(first).to_numpy(zero_copy_only=False)
    # A null id is no repeat of anything: it stays, and pairs with nothing.
    return rows[~valid | (idx == rows)]


def _col(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise KeyError(f"missing column {name!r}; have {table.column_names}")
    return table.column(name)


def join_predictions(
    predictions: pa.Table,
    outcomes: pa.Table,
    oracle: pa.Table | None = None,
    cohorts: pa.Table | None = None,
) -> JoinResult:
    """Inner-join predictions with outcomes on ``exposure_id``, in prediction order.

    The result keeps every prediction column and adds the outcomes' ``y_<task>`` columns,
    plus ``oracle_p_enter`` (null where the oracle has no row for the exposure's
    (user_id, room_id, t0_ms)) and ``low_live_cohort`` (null for users missing from the
    cohort table) when those tables are given.
    """
    pred_ids, out_ids = _col(predictions, "exposure_id"), _col(outcomes, "exposure_id")
    pred_rows, out_rows = _first_rows(pred_ids), _first_rows(out_ids)
    preds = predictions.take(pred_rows)
    outs = outcomes.take(out_rows)

    # Hash lookups keep prediction order and make the join deterministic.
    ids = preds.column("exposure_id")
    match = pc.index_in(
        ids, value_set=outs.column("exposure_id").combine_chunks().cast(ids.type), skip_nulls=True
    )
    matched = pc.is_valid(match).to_numpy(zero_copy_only=False)
    pair = match.to_numpy(zero_copy_only=False)[matched].astype(np.int64)
    joined = preds.filter(pa.array(matched))
    outs = outs.take(pair)
    for name in outcomes.column_names:
        if name.startswith("y_") and name not in joined.column_names:
            joined = joined.append_column(name, outs.column(name))

    mismatch = np.zeros(joined.num_rows, dtype=bool)
    for k in _KEYS:
        if k in joined.column_names and k in outs.column_names:
            a = joined.column(k).to_numpy(zero_copy_only=False)
            b = outs.column(k).to_numpy(zero_copy_only=False)
            mismatch |= a != b

    n_oracle = n_oracle_dup = n_cohort = None
    if oracle is not None:
        joined, n_oracle, n_oracle_dup = _attach_oracle(joined, oracle)
    if cohorts is not None:
        uid = joined.column("user_id")
        known = _col(cohorts, "user_id").combine_chunks().cast(uid.type)
        where = pc.index_in(uid, value_set=known, skip_nulls=True).combine_chunks()
        flags = _col(cohorts, COHORT).combine_chunks().cast(pa.bool_()).take(where)
        joined = joined.append_column(COHORT, flags)
        n_cohort = int(pc.sum(pc.is_valid(where)).as_py() or 0)

    n_joined = joined.num_rows
    return JoinResult(
        table=joined,
        n_predictions=predictions.num_rows,
        n_outcomes=outcomes.num_rows,
        n_joined=n_joined,
        n_predictions_without_outcome=len(pred_rows) - n_joined,
        n_outcomes_without_prediction=len(out_rows) - n_joined,
        n_duplicate_predictions=predictions.num_rows - len(pred_rows),
        n_duplicate_outcomes=outcomes.num_rows - len(out_rows),
        n_key_mismatch=int(mismatch.sum()),
        n_oracle_matched=n_oracle,
        n_oracle_duplicates=n_oracle_dup,
        n_cohort_matched=n_cohort,
    )


def _attach_oracle(joined: pa.Table, oracle: pa.Table) -> tuple[pa.Table, int, int]:
    keys = {k: _col(oracle, k).cast(pa.int64()) for k in _ORACLE_KEYS}
    right = pa.table({**keys, "p_enter": _col(oracle, "p_enter").cast(pa.float32())})
    # One oracle value per key; the first row wins so repeated keys cannot fan out rows.
    right = right.group_by(list(_ORACLE_KEYS), use_threads=False).aggregate([("p_enter", "first")])
    n_dup = oracle.num_rows - right.num_rows
    right = right.rename_columns([*_ORACLE_KEYS, ORACLE_P])
    left = pa.table(
        {
            **{k: joined.column(k).cast(pa.int64()) for k in _KEYS},
            "__row": pa.array(np.arange(joined.num_rows, dtype=np.int64)),
        }
    )
    # Table.join returns rows in no set order: scatter them back by the left row number.
    hit = left.join(
        right, keys=list(_KEYS), right_keys=list(_ORACLE_KEYS), join_type="inner"
    ).select(["__row", ORACLE_P])
    values = np.full(joined.num_rows, np.nan, dtype=np.float32)
    found = np.zeros(joined.num_rows, dtype=bool)
    rows = hit.column("__row").to_numpy()
    q = hit.column(ORACLE_P)
    values[rows] = q.to_numpy(zero_copy_only=False)
    found[rows] = pc.is_valid(q).to_numpy(zero_copy_only=False)  # a null p_enter is no value
    joined = joined.append_column(ORACLE_P, pa.array(values, mask=~found))
    return joined, int(found.sum()), n_dup


def _np(table: pa.Table, name: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Values (nulls filled) and the validity mask of a column."""
    col = table.column(name)
    valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
    if np.dtype(dtype).kind == "f":
        col, fill = col.cast(pa.float64()), np.nan
    else:
        col, fill = col.cast(pa.bool_()), False
    values = pc.fill_null(col, fill).to_numpy(zero_copy_only=False).astype(dtype)
    return values, valid


def _click_metrics(y, p, users) -> dict[str, float]:
    return {"auc": M.auc(y, p), "gauc": M.gauc(y, p, users), "logloss": M.logloss(y, p)}


def evaluate_hour(joined: pa.Table | JoinResult, tasks: Sequence[str] = TASKS) -> dict[str, Any]:
    """Metrics of one joined hour.

    Returns ``{"n", "tasks", "oracle", "cohorts", "join"}``: ``tasks`` is one row per task
    having both ``p_<task>`` and ``y_<task>`` (AUC, impression-weighted user GAUC, logloss,
    calibration, positive rate, n; rows with a null label left out of that task);
    ``oracle`` compares the oracle's P(enter) with the model's ``p_click`` on exactly the
    exposures the oracle matched (None without an oracle column); ``cohorts`` gives click
    AUC/GAUC per ``low_live_cohort`` value (empty without a cohort column); ``join`` holds
    the join counts when a ``JoinResult`` is passed.
    """
    join = joined if isinstance(joined, JoinResult) else None
    table = join.table if join is not None else joined
    users = table.column("user_id").to_numpy(zero_copy_only=False)
    report: dict[str, Any] = {
        "n": table.num_rows,
        "tasks": [],
        "oracle": None,
        "cohorts": [],
        "join": join.counts() if join is not None else None,
        "missing_tasks": [],
    }
    for task in tasks:
        if f"p_{task}" not in table.column_names or f"y_{task}" not in table.column_names:
            report["missing_tasks"].append(task)
            continue
        y, valid = _np(table, f"y_{task}", np.float64)
        p, _ = _np(table, f"p_{task}", np.float64)
        y, p, u = y[valid], p[valid], users[valid]
        report["tasks"].append(
            {
                "task": task,
                "n": len(y),
                "positive_rate": float(y.mean()) if len(y) else math.nan,
                "mean_p": float(p.mean()) if len(p) else math.nan,
                "auc": M.auc(y, p),
                "gauc": M.gauc(y, p, u),
                "logloss": M.logloss(y, p),
                "calibration": M.calibration(y, p),
            }
        )

    has_click = {"p_click", "y_click"} <= set(table.column_names)
    if has_click:
        y, y_valid = _np(table, "y_click", np.float64)
        p, _ = _np(table, "p_click", np.float64)
    if has_click and ORACLE_P in table.column_names:
        q, q_valid = _np(table, ORACLE_P, np.float64)
        m = y_valid & q_valid
        oracle = _click_metrics(y[m], q[m], users[m])
        model = _click_metrics(y[m], p[m], users[m])
        report["oracle"] = {
            "n_matched": int(m.sum()),
            **{f"oracle_{k}": v for k, v in oracle.items()},
            **{f"model_{k}": v for k, v in model.items()},
        }
    if has_click and COHORT in table.column_names:
        flag, f_valid = _np(table, COHORT, np.bool_)
        for name, value in (("low_live", True), ("regular", False)):
            m = y_valid & f_valid & (flag == value)
            report["cohorts"].append(
                {
                    "cohort": name,
                    "n": int(m.sum()),
                    "positive_rate": float(y[m].mean()) if m.any() else math.nan,
                    "auc": M.auc(y[m], p[m]),
                    "gauc": M.gauc(y[m], p[m], users[m]),
                }
            )
        report["n_cohort_unknown"] = int((y_valid & ~f_valid).sum())
    return report


def calibration_bins_by_task(
    joined: pa.Table | JoinResult, tasks: Sequence[str] = TASKS, n_bins: int = 10
) -> dict[str, M.CalibrationBins]:
    """Quantile reliability bins per task present in the table (input to calibration_plot)."""
    table = joined.table if isinstance(joined, JoinResult) else joined
    out = {}
    for task in tasks:
        if f"p_{task}" in table.column_names and f"y_{task}" in table.column_names:
            y, valid = _np(table, f"y_{task}", np.float64)
            p, _ = _np(table, f"p_{task}", np.float64)
            out[task] = M.calibration_bins(y[valid], p[valid], n_bins=n_bins)
    return out


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}"
    # A pipe would end the cell early.
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    headers: Mapping[str, str] | None = None,
) -> str:
    """A Markdown table of ``rows`` (dicts) over ``columns``; floats with 4 significant digits.

    Missing keys and None give empty cells; ``headers`` renames columns in the header row.
    """
    headers = headers or {}
    lines = [
        "| " + " | ".join(_cell(headers.get(c, c)) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def report_markdown(report: Mapping[str, Any]) -> str:
    """The three tables of an ``evaluate_hour`` report, with headings, as one Markdown text."""
    parts = [f"**{report['n']} exposures joined**\n", markdown_table(report["tasks"], TASK_COLUMNS)]
    if report.get("oracle"):
        parts += ["\n**Oracle P(enter) vs model p_click, same exposures**\n"]
        parts += [markdown_table([report["oracle"]], ORACLE_COLUMNS)]
    if report.get("cohorts"):
        parts += ["\n**Click by live-activity cohort**\n"]
        parts += [markdown_table(report["cohorts"], COHORT_COLUMNS)]
    return "\n".join(parts)
