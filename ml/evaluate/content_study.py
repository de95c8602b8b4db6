"""ContentCTR's tables on a study world (the paper's Tables 1, 3 and 4; DESIGN §8): every
row × seed trained hour by hour on the same ``segment_windows`` hours — each hour's
windows scored by the model as it stood, then trained on — and evaluated on the pooled
hours after a warm-up (``ml.evaluate.content_tables.content_evaluation``).

Rows: DeepCTR-Torch's ID baselines (``ml.models.content_baselines``); the six feature
fusions of Table 1 (the Perceiver is ContentCTR itself); Table 3's ablations (without
visual, text, streamer id); Table 4's losses (point only; + pair⁰ .. pair³ without the
alignment; the full loss is the Perceiver row). Hours run outer, rows inner, so each
hour's windows are read once. Each model holds its own random streams, and torch's global
one (DeepCTR-Torch's ``fit`` shuffles with it) is swapped in and out around each model's
hour, so a row's result is the one it gets trained alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from ml.evaluate.ablation import VariantRun
from ml.evaluate.content_tables import content_evaluation
from ml.hours import HOUR_MS, partition_key
from ml.io.lake import SEGMENT_WINDOWS
from ml.io.store import Store
from ml.models.content_baselines import BASELINES, BaselineConfig, IdBaseline
from ml.models.content_ctr import ContentCTRConfig
from ml.models.content_losses import ContentLossConfig
from ml.train.content_tensors import content_batch
from ml.train.content_train import ContentTrainConfig, ContentTrainer
from ml.train.publish import LakeHourReader

FULL = "perceiver"  # ContentCTR as the paper defines it: Perceiver fusion, the full loss
# name -> (ContentCTRConfig overrides, ContentLossConfig overrides)
CONTENT_ROWS: dict[str, tuple[dict, dict]] = {
    FULL: ({}, {}),
    "self_attention_plain": ({"fusion": "self_attention_plain"}, {}),
    "self_attention_input": ({"fusion": "self_attention_input"}, {}),
    "cross_attention_q": ({"fusion": "cross_attention_q"}, {}),
    "cross_attention_kv": ({"fusion": "cross_attention_kv"}, {}),
    "cross_attention_qkv": ({"fusion": "cross_attention_qkv"}, {}),
    "no_visual": ({"use_visual": False}, {}),
    "no_text": ({"use_text": False}, {}),
    "no_streamer": ({"use_streamer": False}, {}),
    "point_only": ({}, {"pair_variant": None, "use_align": False}),
    **{f"pair{v}": ({}, {"pair_variant": v, "use_align": False}) for v in (0, 1, 2, 3)},
}
BASELINE_ROWS = {f"id_{name.lower()}": name for name in BASELINES}
ALL_ROWS = (*BASELINE_ROWS, *CONTENT_ROWS)
TABLES = {
    "Table 1 (baselines, fusions)": (*BASELINE_ROWS, *(n for n in CONTENT_ROWS if n == FULL
                                     or n.startswith(("self_", "cross_")))),
    "Table 3 (modalities)": (FULL, "no_visual", "no_text", "no_streamer"),
    "Table 4 (losses)": ("point_only", "pair0", "pair1", "pair2", "pair3", FULL),
}  # fmt: skip
CONTENT_METRICS: tuple[tuple[str, str], ...] = (
    ("tau", "Kendall tau"),
    ("tau_window_mean", "tau per window"),
    ("mae", "MAE"),
    ("avg_s_over_y", "avg s/y"),
    ("highlight_map", "highlight mAP"),
)


@dataclass(frozen=True)
class ContentStudyConfig:
    hours: int = 16
    warmup_hours: int = 4
    seeds: tuple[int, ...] = (0, 1, 2)
    rows: tuple[str, ...] = ALL_ROWS

    def __post_init__(self):
        unknown = [r for r in self.rows if r not in ALL_ROWS]
        if unknown:
            raise ValueError(f"unknown rows {unknown}: one of {', '.join(ALL_ROWS)}")
        if not 0 <= self.warmup_hours < self.hours:
            raise ValueError(f"warm-up {self.warmup_hours} h must be shorter than {self.hours} h")
        if not self.seeds:
            raise ValueError("at least one seed")


def _model(row: str, seed: int, device: str):
    if row in BASELINE_ROWS:
        return IdBaseline(BaselineConfig(name=BASELINE_ROWS[row], seed=seed), device=device)
    model_over, loss_over = CONTENT_ROWS[row]
    return ContentTrainer(
        dataclasses.replace(ContentCTRConfig(), **model_over),
        dataclasses.replace(ContentLossConfig(), **loss_over),
        ContentTrainConfig(seed=seed), device,
    )  # fmt: skip


def _scores(model, batch, windows: pa.Table) -> np.ndarray:
    """(N, W) predicted CTR of the hour's windows, then one training pass over them."""
    if isinstance(model, IdBaseline):
        end = windows.column("end_ms").to_numpy()
        room = windows.column("room_id").to_numpy()
        pred = model.predict(batch, end, room)
        model.fit_hour(batch, end, room)
        return pred
    pred = model.predict(batch).numpy()
    model.train_hour(batch)
    return pred


def run_content_study(
    lake: Store, start_ms: int, cfg: ContentStudyConfig, device: str = "cpu",
    log: Callable[[str], None] = lambda _: None,
) -> list[VariantRun]:  # fmt: skip
    """Every row × seed of ``cfg`` over hours ``start_ms`` .. ``start_ms + (hours-1) h``."""
    keys = [(r, s) for r in cfg.rows for s in cfg.seeds]
    models, rng = {}, {}
    for k in keys:  # the global random state each model leaves after its seeded init
        models[k] = _model(*k, device)
        rng[k] = torch.get_rng_state()
    runs = {k: VariantRun(*k) for k in keys}
    pooled: dict[tuple, list[pa.Table]] = {k: [] for k in keys}
    reader = LakeHourReader(lake)
    for i in range(cfg.hours):
        key = partition_key(start_ms + i * HOUR_MS)
        windows = reader.read(SEGMENT_WINDOWS, key, why="the content study trains on it")
        if windows.num_rows == 0:
            continue
        batch = content_batch(windows)
        w = batch.y.shape[1]
        base = windows.select(["room_id", "end_segment_index", "ctr", "shows"])
        for k, model in models.items():
            torch.set_rng_state(rng[k])
            pred = _scores(model, batch, windows)
            rng[k] = torch.get_rng_state()
            table = base.append_column(
                "p_ctr", pa.FixedSizeListArray.from_arrays(pa.array(pred.reshape(-1), pa.float32()), w)
            )  # fmt: skip
            report = content_evaluation(table)
            runs[k].hourly.append({"hour": key, "tau": report["tau"], "windows": report["windows"]})
            runs[k].samples += int(windows.num_rows)
            if i >= cfg.warmup_hours:
                pooled[k].append(table)
        log(f"hour {key}: {windows.num_rows} windows, {len(models)} models")
    for k, run in runs.items():
        if not pooled[k]:
            raise ValueError("no windows in the evaluated hours: a larger world or more hours")
        report = content_evaluation(pa.concat_tables(pooled[k]))
        run.metrics = {m: float(report[m]) for m, _ in CONTENT_METRICS} | {
            "n": float(report["windows"]), "segments": float(report["segments"]),
        }  # fmt: skip
    return list(runs.values())


def check_content_claims(summary: Sequence[dict]) -> list[dict]:
    """The issue's three claims on Kendall tau (global), each measured on ``summary``."""
    rows = {r["variant"]: r for r in summary}

    def diff(a, b):
        return rows[a]["tau"] - rows[b]["tau"], max(rows[a]["tau_sd"], rows[b]["tau_sd"])

    out = []
    base = [b for b in BASELINE_ROWS if b in rows]
    c1 = "ContentCTR beats the best ID baseline's tau by more than the spread"
    if FULL in rows and base:
        best = max(base, key=lambda b: rows[b]["tau"])
        d, sd = diff(FULL, best)
        out.append({"claim": c1, "measured": f"{FULL} − {best} = {d:+.4f}", "spread": f"{sd:.4f}",
                    "holds": bool(d > sd)})  # fmt: skip
    else:
        out.append({"claim": c1, "measured": "not run", "spread": "", "holds": None})
    c2 = "pair¹ beats pair⁰ and point-only"
    if {"pair1", "pair0", "point_only"} <= set(rows):
        (d0, sd0), (dp, sdp) = diff("pair1", "pair0"), diff("pair1", "point_only")
        out.append({"claim": c2, "measured": f"pair1 − pair0 = {d0:+.4f}; pair1 − point_only "
                    f"= {dp:+.4f}", "spread": f"{max(sd0, sdp):.4f}",
                    "holds": bool(d0 > 0 and dp > 0)})  # fmt: skip
    else:
        out.append({"claim": c2, "measured": "not run", "spread": "", "holds": None})
    c3 = "removing visual hurts most (of visual, text, streamer id)"
    drops = {r: rows[FULL]["tau"] - rows[r]["tau"] for r in ("no_visual", "no_text", "no_streamer")
             if r in rows and FULL in rows}  # fmt: skip
    if len(drops) == 3:
        worst = max(drops, key=drops.get)
        out.append({"claim": c3, "measured": ", ".join(f"{r}: {v:+.4f}" for r, v in drops.items()),
                    "spread": "", "holds": worst == "no_visual"})  # fmt: skip
    else:
        out.append({"claim": c3, "measured": "not run", "spread": "", "holds": None})
    return out
