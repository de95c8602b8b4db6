"""The Moment & Cross ablation (DESIGN §8): every variant × seed trained hour by hour with
progressive validation on the same hours of one lake, evaluated on the hours after a
warm-up, summarised as mean and spread over seeds, with the oracle as the ceiling row.

Hours run outer and variants inner: each hour's tensors are read once per distinct input
recipe (freshness, streams) and replayed by every trainer that reads that recipe, each
on its own copy (a trainer hashes the rows for its own tables). Trainers never share a
random stream (each holds its own generator; nothing draws from torch's global one while
training: dropout is 0), so a variant's result is the one it gets trained alone.

Metrics of a (variant, seed) pool every evaluated hour's exposures into one table
(``ml.evaluate.tables.evaluate_hour`` on the concatenation): click AUC and GAUC, AUC per
task, click logloss, gift calibration (mean prediction / mean label), and click AUC and
GAUC of the low-live-activity cohort. The summary gives each metric's mean and standard
deviation (ddof 1) over seeds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ml.evaluate.tables import ORACLE_P, evaluate_hour, join_predictions
from ml.evaluate.truth import read_cohorts, read_oracle
from ml.hours import HOUR_MS, partition_key
from ml.io.lake import LIVE_OUTCOMES
from ml.io.store import Store
from ml.moment.emission_hour import LOOKBACK_HOURS
from ml.schema import TASKS
from ml.train.publish import LakeHourReader, read_hour_data, window_keys
from ml.train.stream import StreamTrainer
from ml.train.variants import SEEDS, VARIANTS, parse_variant, variant_configs

ORACLE = "oracle"
# (metric key, column header) in table order
METRICS: tuple[tuple[str, str], ...] = (
    ("click_auc", "click AUC"),
    ("click_gauc", "click GAUC"),
    *((f"auc_{t}", f"AUC {t}") for t in TASKS if t != "click"),
    ("click_logloss", "click logloss"),
    ("gift_calibration", "gift calib."),
    ("low_click_auc", "low-live click AUC"),
    ("low_click_gauc", "low-live click GAUC"),
)
_KEEP = ("user_id", *(f"p_{t}" for t in TASKS), *(f"y_{t}" for t in TASKS), ORACLE_P,
         "low_live_cohort")  # fmt: skip


@dataclass(frozen=True)
class AblationConfig:
    hours: int = 16  # trained hours, from the lake's first partition
    warmup_hours: int = 4  # trained, not evaluated
    seeds: tuple[int, ...] = SEEDS
    variants: tuple[str, ...] = tuple(VARIANTS)

    def __post_init__(self):
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variants {unknown}: one of {', '.join(VARIANTS)}")
        if not 0 <= self.warmup_hours < self.hours:
            raise ValueError(f"warm-up {self.warmup_hours} h must be shorter than {self.hours} h")
        if not self.seeds:
            raise ValueError("at least one seed")


@dataclass
class VariantRun:
    """One variant × seed: per-hour click AUC (and the oracle's) and the pooled metrics."""

    variant: str
    seed: int
    hourly: list[dict] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    seconds: float = 0.0


def pooled_metrics(report: dict) -> dict[str, float]:
    """The ablation's metrics of one ``evaluate_hour`` report."""
    tasks = {r["task"]: r for r in report["tasks"]}
    low = next((c for c in report["cohorts"] if c["cohort"] == "low_live"), {})
    out = {
        "click_auc": tasks["click"]["auc"],
        "click_gauc": tasks["click"]["gauc"],
        **{f"auc_{t}": tasks[t]["auc"] for t in TASKS if t != "click" and t in tasks},
        "click_logloss": tasks["click"]["logloss"],
        "gift_calibration": tasks["gift"]["calibration"] if "gift" in tasks else np.nan,
        "low_click_auc": low.get("auc", np.nan),
        "low_click_gauc": low.get("gauc", np.nan),
        "n": report["n"],
        "n_low_live": low.get("n", 0),
    }
    return {k: float(v) for k, v in out.items()}


def oracle_metrics(pooled: pa.Table) -> dict[str, float]:
    """The ceiling: the simulator's true P(enter) as the click prediction, on the exposures
    it matched (click metrics only: the oracle knows no other task)."""
    has = pooled.column(ORACLE_P).is_valid()
    t = pooled.filter(has)
    cols = {"user_id": t.column("user_id"), "p_click": t.column(ORACLE_P),
            "y_click": t.column("y_click")}  # fmt: skip
    if "low_live_cohort" in t.column_names:
        cols["low_live_cohort"] = t.column("low_live_cohort")
    report = evaluate_hour(pa.table(cols), tasks=("click",))
    m = pooled_metrics(report)
    known = ("click_auc", "click_gauc", "click_logloss", "low_click_auc", "low_click_gauc")
    return {k: m[k] if k in known else float("nan") for k, _ in METRICS} | {
        "n": m["n"], "n_low_live": m["n_low_live"],
    }  # fmt: skip


def _recipe(trainer: StreamTrainer) -> tuple:
    """What ``hour_data`` reads depends on: the model's input widths and the training
    config's freshness and streams."""
    m, t = trainer.model_cfg, trainer.cfg
    return (t.freshness, t.streams, m.f_room, m.f_user, m.seq_len, m.gsus, m.content_dim)


def run_ablation(
    lake: Store,
    landing: Store,
    start_ms: int,
    cfg: AblationConfig,
    device: str = "cpu",
    log: Callable[[str], None] = lambda _: None,
) -> list[VariantRun]:
    """Train and evaluate every variant × seed of ``cfg`` over hours ``start_ms`` ..
    ``start_ms + (hours - 1) h`` of ``lake`` (its data layer and outcomes published)."""
    keys = [f"{v}-s{s}" for v in cfg.variants for s in cfg.seeds]
    trainers = {k: StreamTrainer(*variant_configs(k), device=device) for k in keys}
    runs = {k: VariantRun(*parse_variant(k)) for k in keys}
    pooled: dict[str, list[pa.Table]] = {k: [] for k in keys}
    cohorts, reader = read_cohorts(landing), LakeHourReader(lake)
    for i in range(cfg.hours):
        hour_ms = start_ms + i * HOUR_MS
        key = partition_key(hour_ms)
        window = window_keys(hour_ms, LOOKBACK_HOURS, start_ms)
        outcomes = reader.read(LIVE_OUTCOMES, key, why="the ablation evaluates it")
        oracle = read_oracle(landing, hour_ms)
        cache: dict[tuple, object] = {}
        t_hour = time.perf_counter()
        for k, trainer in trainers.items():
            recipe = _recipe(trainer)
            if recipe not in cache:
                cache[recipe] = read_hour_data(lake, trainer, hour_ms, window)
            t0 = time.perf_counter()
            res = trainer.run_hour(dataclasses.replace(cache[recipe]), log_every=1 << 62)
            runs[k].seconds += time.perf_counter() - t0
            runs[k].samples += res.stats["samples"]
            joined = join_predictions(res.predictions, outcomes, oracle, cohorts)
            report = evaluate_hour(joined)
            click = next(r for r in report["tasks"] if r["task"] == "click")
            runs[k].hourly.append(
                {"hour": key, "click_auc": click["auc"],
                 "oracle_auc": (report["oracle"] or {}).get("oracle_auc", np.nan)}
            )  # fmt: skip
            if i >= cfg.warmup_hours:
                table = joined.table
                pooled[k].append(table.select([c for c in _KEEP if c in table.column_names]))
        del cache
        log(f"hour {key}: {len(trainers)} trainers in {time.perf_counter() - t_hour:.1f} s")
    for k, run in runs.items():
        run.metrics = pooled_metrics(evaluate_hour(pa.concat_tables(pooled[k])))
    first = pa.concat_tables(pooled[keys[0]])
    if ORACLE_P in first.column_names:
        oracle_run = VariantRun(ORACLE, 0, metrics=oracle_metrics(first))
        oracle_run.hourly = [
            {"hour": h["hour"], "click_auc": h["oracle_auc"], "oracle_auc": h["oracle_auc"]}
            for h in runs[keys[0]].hourly
        ]
        runs[ORACLE] = oracle_run
    return list(runs.values())


def summarize(
    runs: Sequence[VariantRun], metrics: Sequence[tuple[str, str]] = METRICS
) -> list[dict]:
    """One row per variant (the run order kept): ``<metric>`` the mean over seeds and
    ``<metric>_sd`` the standard deviation (ddof 1; 0 for one seed or the oracle)."""
    by: dict[str, list[VariantRun]] = {}
    for r in runs:
        by.setdefault(r.variant, []).append(r)
    rows = []
    for name, rs in by.items():
        row: dict = {"variant": name, "seeds": len(rs), "n": int(rs[0].metrics.get("n", 0)),
                     "n_low_live": int(rs[0].metrics.get("n_low_live", 0))}  # fmt: skip
        for m, _ in metrics:
            v = np.array([r.metrics.get(m, np.nan) for r in rs], np.float64)
            row[m] = float(np.mean(v)) if np.isfinite(v).all() else float("nan")
            row[f"{m}_sd"] = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
        row["samples_per_s"] = sum(r.samples for r in rs) / max(sum(r.seconds for r in rs), 1e-9)
        rows.append(row)
    return rows
