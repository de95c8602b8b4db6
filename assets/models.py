"""The model stage, hourly per variant: streaming training with progressive validation
(``moment_cross_model`` + ``live_predictions``) and its prequential evaluation
(``moment_cross_eval``). Thin wrappers over ml.train / ml.evaluate."""

import dataclasses

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.cross import load_catalog
from assets.lake import (
    CATALOG,
    EXPOSURE_SEQUENCES,
    IN_ORDER_HINT,
    LIVE_EXPOSURES,
    LIVE_OUTCOMES,
    LIVE_PREDICTIONS,
    MOMENT_CROSS_EVAL,
    MOMENT_CROSS_MODEL,
    STREAM_ASSETS,
    read_partition,
    window_keys,
)
from assets.metadata import md_table, png
from assets.partitions import (
    PREVIOUS_MODEL_HOUR,
    SAME_HOUR,
    START_MS,
    model_partition,
    model_partitions,
)
from ml.evaluate import plots
from ml.evaluate.tables import calibration_bins_by_task, evaluate_hour, join_predictions
from ml.hours import HOUR_MS, landing_dir, partition_key
from ml.io.lake import variant_dir
from ml.io.store import Store, parquet_bytes, parquet_parts
from ml.moment.emission_hour import LOOKBACK_HOURS
from ml.schema import TASKS
from ml.train.checkpoint import CHECKPOINT_FILE, checkpoint_bytes, load_checkpoint
from ml.train.hour_data import hour_data
from ml.train.stream import PREDICTION_SCHEMA, StreamTrainer
from ml.train.tensorboard import log_evaluation, log_training, tensorboard_writer
from ml.train.variants import variant_configs
from resources.device import Device
from resources.storage import LakeStorage, LandingZone


class LakeHourReader:
    """The trainer's view of the lake: published partitions or a clear failure naming them."""

    def __init__(self, lake: Store):
        self.lake = lake

    def samples(self, stream: str, key: str, columns: list[str]) -> pa.Table:
        return read_partition(self.lake, STREAM_ASSETS[stream], key, columns=columns)

    def exposures(self, key: str, columns: list[str] | None = None) -> pa.Table:
        return read_partition(self.lake, LIVE_EXPOSURES, key, columns=columns)

    def sequences(self, key: str) -> pa.Table:
        return read_partition(self.lake, EXPOSURE_SEQUENCES, key)


def previous_checkpoint(lake: Store, variant: str, hour_ms: int) -> dict | None:
    """The checkpoint of model[H-1, variant]; None for the first partition."""
    if hour_ms <= START_MS:
        return None
    prev = partition_key(hour_ms - HOUR_MS)
    rel = variant_dir(MOMENT_CROSS_MODEL, variant, prev)
    if lake.manifest(rel) is None:
        raise dg.Failure(
            f"{MOMENT_CROSS_MODEL} {prev} ({variant}) is not materialized ({lake.url(rel)}): "
            f"model[H] starts from model[H-1]; {IN_ORDER_HINT}"
        )
    return load_checkpoint(lake.read_bytes(f"{rel}/{CHECKPOINT_FILE}"))


def _hour_deps(asset: str) -> dg.AssetDep:
    return dg.AssetDep(asset, partition_mapping=SAME_HOUR)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            MOMENT_CROSS_MODEL,
            group_name="models",
            kinds={"pytorch"},
            description="The Moment & Cross ranking model of one variant after replaying the "
            "samples emitted in H (checkpoint: weights, optimizer, RNG, counters), starting "
            "from model[H-1] (the first hour from a seeded initialisation).",
            deps=[
                dg.AssetDep(MOMENT_CROSS_MODEL, partition_mapping=PREVIOUS_MODEL_HOUR),
                *[_hour_deps(a) for a in (*STREAM_ASSETS.values(), LIVE_EXPOSURES)],
                _hour_deps(EXPOSURE_SEQUENCES),
                CATALOG,
            ],
        ),
        dg.AssetSpec(
            LIVE_PREDICTIONS,
            group_name="models",
            kinds={"parquet"},
            description="Every exposure of H with t0 in H scored by the model as it stood "
            "before training on any sample emitted after its t0 (progressive validation).",
        ),
    ],
    partitions_def=model_partitions,
    can_subset=False,
)
def moment_cross_training(context: dg.AssetExecutionContext, storage: LakeStorage, device: Device):
    key, hour_ms, variant = model_partition(context)
    lake = storage.store()
    model_cfg, train_cfg = variant_configs(variant)
    trainer = StreamTrainer(model_cfg, train_cfg, device=device.torch_device())
    prev = previous_checkpoint(lake, variant, hour_ms)
    if prev is not None:
        trainer.load_state(prev)
    data = hour_data(
        LakeHourReader(lake), hour_ms, key, window_keys(hour_ms, LOOKBACK_HOURS),
        load_catalog(lake), model_cfg, train_cfg,
    )  # fmt: skip
    res = trainer.run_hour(data)
    stats = res.stats
    manifest = {
        "partition": key, "variant": variant, "streams": list(train_cfg.streams),
        "config": {"model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg)},
        **{k: v for k, v in stats.items() if k != "seconds"},
    }  # fmt: skip
    written = lake.publish(
        variant_dir(MOMENT_CROSS_MODEL, variant, key),
        {CHECKPOINT_FILE: checkpoint_bytes(trainer.state())},
        _finite(manifest),
    )
    lake.publish(
        variant_dir(LIVE_PREDICTIONS, variant, key),
        parquet_parts(res.predictions),
        _finite(manifest),
    )
    with tensorboard_writer(lake, variant, f"train-{key.replace(':', '')}") as tb:
        log_training(tb, res.step_log, trainer.model)
    seconds = max(stats["seconds"], 1e-9)
    yield dg.MaterializeResult(
        asset_key=MOMENT_CROSS_MODEL,
        metadata={
            "variant": variant,
            "samples_trained": int(stats["samples"]),
            "optimizer_steps": int(stats["steps_in_hour"]),
            "samples_per_stream": md_table(
                [
                    {"stream": s, "samples": n, "mean loss": stats["loss_per_stream"][s]}
                    for s, n in stats["samples_per_stream"].items()
                ]
            ),
            "checkpoint_bytes": written,
            "total_samples": stats["counters"]["samples"],
            "total_steps": stats["counters"]["steps"],
            "replay_samples_per_s": round(stats["samples"] / seconds),
            "device": str(trainer.device),
        },
    )
    yield dg.MaterializeResult(
        asset_key=LIVE_PREDICTIONS,
        metadata={
            "dagster/row_count": res.predictions.num_rows,
            "variant": variant,
            "late_not_scored": stats["late_not_scored"],
            "mean_p_click": float(np.mean(res.predictions.column("p_click").to_numpy()))
            if res.predictions.num_rows
            else 0.0,
        },
    )


def read_oracle(landing: Store, hour_ms: int) -> pa.Table | None:
    """The simulator's true P(enter) of the exposures at hour H (None on real data)."""
    rel = f"oracle/live_exposures/{landing_dir(hour_ms)}"
    if landing.manifest(rel) is None:
        return None
    return landing.read_published(rel, columns=["user_id", "item_id", "event_time_ms", "p_enter"])


def read_cohorts(landing: Store) -> pa.Table | None:
    rel = "oracle/users.parquet"
    return (
        landing.read_parquet(rel, ["user_id", "low_live_cohort"]) if landing.exists(rel) else None
    )


@dg.asset(
    name=MOMENT_CROSS_EVAL,
    group_name="models",
    kinds={"parquet"},
    partitions_def=model_partitions,
    deps=[LIVE_PREDICTIONS, _hour_deps(LIVE_OUTCOMES)],
    description="Prequential evaluation of one variant's predictions of H against the final "
    "outcomes: per-task AUC, GAUC, logloss, calibration; the simulator oracle's click AUC on "
    "the same exposures as the ceiling; click AUC/GAUC by live-activity cohort.",
)
def moment_cross_eval(
    context: dg.AssetExecutionContext, storage: LakeStorage, landing: LandingZone
):
    key, hour_ms, variant = model_partition(context)
    lake, land = storage.store(), landing.store()
    rel = variant_dir(LIVE_PREDICTIONS, variant, key)
    if lake.manifest(rel) is None:
        raise dg.Failure(
            f"{LIVE_PREDICTIONS} {key} ({variant}) is not materialized ({lake.url(rel)})"
        )
    predictions = lake.read_published(rel, schema=PREDICTION_SCHEMA)
    outcomes = read_partition(lake, LIVE_OUTCOMES, key)
    joined = join_predictions(predictions, outcomes, read_oracle(land, hour_ms), read_cohorts(land))
    report = evaluate_hour(joined)
    rows = [{"hour": key, "variant": variant, **r} for r in report["tasks"]]
    oracle = report["oracle"]
    manifest = {
        "partition": key, "variant": variant, "tasks": report["tasks"], "oracle": oracle,
        "cohorts": report["cohorts"], "join": report["join"],
    }  # fmt: skip
    lake.publish(
        variant_dir(MOMENT_CROSS_EVAL, variant, key),
        {"part-00000.parquet": parquet_bytes(pa.Table.from_pylist(rows))},
        _finite(manifest),
    )
    history = _auc_history(lake, variant, hour_ms)
    table = joined.table
    labels = {t: table.column(f"y_{t}").to_numpy(zero_copy_only=False) for t in TASKS}
    probs = {t: table.column(f"p_{t}").to_numpy(zero_copy_only=False) for t in TASKS}
    with tensorboard_writer(lake, variant, f"eval-{key.replace(':', '')}") as tb:
        log_evaluation(
            tb, (hour_ms - START_MS) // HOUR_MS, report, labels, probs, _hparams(variant)
        )
    click = next(r for r in report["tasks"] if r["task"] == "click")
    return dg.MaterializeResult(
        metadata={
            "variant": variant,
            "exposures_evaluated": report["n"],
            "click_auc": _num(click["auc"]),
            "click_gauc": _num(click["gauc"]),
            "oracle_click_auc": _num(oracle.get("oracle_auc")),
            "tasks": md_table(report["tasks"]),
            "oracle_ceiling": md_table([oracle]),
            "cohorts": md_table(report["cohorts"]),
            "calibration_plot": png(plots.calibration_plot(calibration_bins_by_task(joined))),
            "auc_by_hour": png(
                plots.auc_by_hour_plot(
                    [h for h, _, _ in history],
                    [m for _, m, _ in history],
                    [o for _, _, o in history],
                )
            ),
        }
    )


def _auc_history(lake: Store, variant: str, hour_ms: int, hours: int = 48) -> list[tuple]:
    """(hour, click AUC, oracle click AUC) of this variant's evaluated hours up to H."""
    out = []
    for k in window_keys(hour_ms, hours - 1):
        man = lake.manifest(variant_dir(MOMENT_CROSS_EVAL, variant, k))
        if man is not None:
            click = next(r for r in man["tasks"] if r["task"] == "click")
            out.append((k, click.get("auc"), (man.get("oracle") or {}).get("oracle_auc")))
    return out


def _hparams(variant: str) -> dict:
    model_cfg, train_cfg = variant_configs(variant)
    keep = ("use_cross", "use_realtime", "backbone", "d", "levels")
    return {
        "variant": variant,
        **{k: getattr(model_cfg, k) for k in keep},
        "mode": train_cfg.mode, "freshness": train_cfg.freshness, "seed": train_cfg.seed,
        "lr": train_cfg.lr, "batch_size": train_cfg.batch_size,
    }  # fmt: skip


def _num(v) -> float:
    return float(v) if v is not None and np.isfinite(v) else float("nan")


def _finite(obj):
    """The manifest as strict JSON: NaN (a one-class hour's AUC) becomes null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj
