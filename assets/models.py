"""The model stage, hourly per variant: streaming training with progressive validation
(``moment_cross_model`` + ``live_predictions``) and its prequential evaluation
(``moment_cross_eval``). Thin wrappers over ml.train / ml.evaluate."""

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.automation import WHEN_INPUTS_EXIST
from assets.lake import (
    CATALOG,
    EXPOSURE_SEQUENCES,
    LIVE_EXPOSURES,
    LIVE_OUTCOMES,
    LIVE_PREDICTIONS,
    MOMENT_CROSS_EVAL,
    MOMENT_CROSS_MODEL,
    STREAM_ASSETS,
    read_partition,
    read_variant_partition,
    window_keys,
)
from assets.metadata import (
    MODEL_OWNERS,
    asset_tags,
    column_schema,
    md_table,
    png,
    speed,
    table_metadata,
)
from assets.partitions import (
    PREVIOUS_MODEL_HOUR,
    SAME_HOUR,
    START_MS,
    model_partition,
    model_partitions,
)
from ml.evaluate import plots
from ml.evaluate.tables import calibration_bins_by_task, evaluate_hour, join_predictions
from ml.evaluate.truth import read_cohorts, read_oracle
from ml.hours import HOUR_MS
from ml.io.gates import FailedGateError
from ml.io.lake import variant_dir
from ml.io.store import Store, parquet_bytes
from ml.moment.emission_hour import LOOKBACK_HOURS
from ml.schema import TASKS
from ml.train.publish import MissingPartitionError, json_safe, publish_hour, train_hour
from ml.train.stream import PREDICTION_SCHEMA, StreamTrainer
from ml.train.tensorboard import log_evaluation, log_training, tensorboard_writer
from ml.train.variants import variant_configs
from resources.device import Device
from resources.storage import LakeStorage, LandingZone


def _hour_deps(asset: str) -> dg.AssetDep:
    return dg.AssetDep(asset, partition_mapping=SAME_HOUR)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            MOMENT_CROSS_MODEL,
            group_name="models",
            kinds={"pytorch"},
            owners=MODEL_OWNERS,
            tags=asset_tags("train", "model"),
            description="The Moment & Cross ranking model of one variant (a partition is an "
            "hour and a variant) after training on the samples sent during the hour, in the "
            "order they were sent, continuing from the previous hour's model (the first hour "
            "starts from a seeded initialisation). Stored as a checkpoint: weights, optimizer "
            "state, random state, counters.",
            deps=[
                dg.AssetDep(MOMENT_CROSS_MODEL, partition_mapping=PREVIOUS_MODEL_HOUR),
                *[_hour_deps(a) for a in (*STREAM_ASSETS.values(), LIVE_EXPOSURES)],
                _hour_deps(EXPOSURE_SEQUENCES),
                _hour_deps(CATALOG),
            ],
        ),
        dg.AssetSpec(
            LIVE_PREDICTIONS,
            group_name="models",
            kinds={"parquet"},
            owners=MODEL_OWNERS,
            tags=asset_tags("train", "evaluation"),
            description="Every live impression shown during the hour, scored by the model as "
            "it stood just before the impression: it had not yet trained on anything sent "
            "after it, so every score is an honest out-of-sample prediction (progressive "
            "validation).",
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
    try:
        res = train_hour(
            lake, trainer, variant, hour_ms, window_keys(hour_ms, LOOKBACK_HOURS), START_MS
        )
    except (MissingPartitionError, FailedGateError) as e:
        raise dg.Failure(str(e)) from e
    stats = res.stats
    written = publish_hour(lake, trainer, variant, res)["checkpoint_bytes"]
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
            "device": str(trainer.device),
            **speed(
                replay_samples_per_s=round(stats["samples"] / seconds),
                seconds=round(stats["seconds"], 3),
            ),
        },
    )
    yield dg.MaterializeResult(
        asset_key=LIVE_PREDICTIONS,
        metadata={
            **table_metadata(res.predictions.schema, res.predictions.num_rows),
            "variant": variant,
            "late_not_scored": stats["late_not_scored"],
            "mean_p_click": float(np.mean(res.predictions.column("p_click").to_numpy()))
            if res.predictions.num_rows
            else 0.0,
        },
    )


@dg.asset(
    name=MOMENT_CROSS_EVAL,
    group_name="models",
    kinds={"parquet"},
    owners=MODEL_OWNERS,
    tags=asset_tags("evaluate", "evaluation"),
    partitions_def=model_partitions,
    deps=[LIVE_PREDICTIONS, _hour_deps(LIVE_OUTCOMES)],
    automation_condition=WHEN_INPUTS_EXIST,
    description="How well one variant's predictions of the hour did against the final "
    "outcomes: per task AUC, per-user AUC (GAUC), log loss and calibration; the click AUC of "
    "the simulator's true probabilities on the same impressions, as the best achievable; and "
    "click AUC for users who rarely watch live against the rest.",
)
def moment_cross_eval(
    context: dg.AssetExecutionContext, storage: LakeStorage, landing: LandingZone
):
    key, hour_ms, variant = model_partition(context)
    lake, land = storage.store(), landing.store()
    predictions = read_variant_partition(lake, LIVE_PREDICTIONS, variant, key, PREDICTION_SCHEMA)
    outcomes = read_partition(lake, LIVE_OUTCOMES, key)
    joined = join_predictions(predictions, outcomes, read_oracle(land, hour_ms), read_cohorts(land))
    report = evaluate_hour(joined)
    rows = [{"hour": key, "variant": variant, **r} for r in report["tasks"]]
    oracle = report["oracle"]
    manifest = {
        "partition": key, "variant": variant, "tasks": report["tasks"], "oracle": oracle,
        "cohorts": report["cohorts"], "join": report["join"],
    }  # fmt: skip
    evaluation = pa.Table.from_pylist(rows)
    lake.publish(
        variant_dir(MOMENT_CROSS_EVAL, variant, key),
        {"part-00000.parquet": parquet_bytes(evaluation)},
        json_safe(manifest),
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
            "dagster/column_schema": column_schema(evaluation.schema),
            "dagster/row_count": evaluation.num_rows,
            "variant": variant,
            "exposures_evaluated": report["n"],
            "click_auc": _num(click["auc"]),
            "click_gauc": _num(click["gauc"]),
            "oracle_click_auc": _num(oracle.get("oracle_auc")),
            # One number per task, so each charts over the hours.
            **{f"auc/{r['task']}": _num(r["auc"]) for r in report["tasks"]},
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
