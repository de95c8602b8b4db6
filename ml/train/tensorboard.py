"""TensorBoard logs of one variant under ``LIVECROSS_HOME/tensorboard/<variant>/``.

Events are written by ``torch.utils.tensorboard`` into a local directory; on an S3 data
root that directory is a temporary one whose event files are then uploaded (TensorBoard
reads every event file of a run directory, so each hour's own file adds to the series).
Steps are the trainer's cumulative optimizer steps (scalars of training) or hours since
the first partition (evaluation), so the curves continue across hours and resumes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from ml.io.store import Store


def tensorboard_dir(variant: str) -> str:
    return f"tensorboard/{variant}"


@contextmanager
def tensorboard_writer(store: Store, variant: str, run: str) -> Iterator[SummaryWriter]:
    """A SummaryWriter whose events end up in ``tensorboard/<variant>/<run>/`` of the data
    root (written in place for a local root, uploaded after closing for S3)."""
    rel = f"{tensorboard_dir(variant)}/{run}"
    if not store.is_s3:
        path = Path(store.root) / rel
        path.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(path))
        try:
            yield writer
        finally:
            writer.close()
        return
    with tempfile.TemporaryDirectory() as tmp:
        writer = SummaryWriter(tmp)
        try:
            yield writer
        finally:
            writer.close()
            for name in sorted(os.listdir(tmp)):
                store.write_bytes(f"{rel}/{name}", (Path(tmp) / name).read_bytes())


def log_training(writer: SummaryWriter, step_log: list[dict], model: torch.nn.Module) -> None:
    """Per optimizer step: the loss of each stream, the gradient norm, the learning rate;
    per hour: histograms of the weights at the hour's last step."""
    for row in step_log:
        step = row["step"]
        for k, v in row.items():
            if k.startswith("loss_"):
                writer.add_scalar(f"loss/{k.removeprefix('loss_')}", v, step)
        writer.add_scalar("train/grad_norm", row["grad_norm"], step)
        writer.add_scalar("train/lr", row["lr"], step)
        writer.add_scalar("train/batch_samples", row["samples"], step)
    if step_log:
        last = step_log[-1]["step"]
        for name, p in model.named_parameters():
            if p.numel() <= 1 << 20:  # the big hashed tables would bloat the logs
                writer.add_histogram(f"weights/{name}", p.detach().float().cpu(), last)


def log_evaluation(
    writer: SummaryWriter,
    hour_index: int,
    report: dict,
    labels: dict[str, np.ndarray],
    probs: dict[str, np.ndarray],
    hparams: dict,
) -> None:
    """Per hour: AUC / GAUC / logloss / calibration of every task, the oracle's click
    AUC, cohort click AUCs, PR curves, and the variant's hyper-parameters with its click
    AUC (TensorBoard's HParams view)."""
    for row in report["tasks"]:
        for metric in ("auc", "gauc", "logloss", "calibration"):
            v = row.get(metric)
            if v is not None and np.isfinite(v):
                writer.add_scalar(f"{metric}/{row['task']}", v, hour_index)
    oracle = report.get("oracle") or {}
    if oracle.get("oracle_auc") is not None and np.isfinite(oracle["oracle_auc"]):
        writer.add_scalar("auc/click_oracle", oracle["oracle_auc"], hour_index)
    for row in report.get("cohorts", []):
        if row.get("auc") is not None and np.isfinite(row["auc"]):
            writer.add_scalar(f"cohort_auc/{row['cohort']}", row["auc"], hour_index)
    for task, y in labels.items():
        if len(y) and 0 < y.sum() < len(y):
            writer.add_pr_curve(f"pr/{task}", y.astype(np.int64), probs[task], hour_index)
    click = next((r["auc"] for r in report["tasks"] if r["task"] == "click"), float("nan"))
    writer.add_hparams(
        hparams, {"hparam/click_auc": float(click)}, run_name=".", global_step=hour_index
    )
