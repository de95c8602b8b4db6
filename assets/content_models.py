"""ContentCTR, hourly: train on the hour's segment windows after scoring them
(``content_ctr_model`` + ``content_predictions``) and evaluate those scores
(``content_ctr_eval``). Thin wrappers over ml.train.content_* / ml.evaluate."""

import dagster as dg
import numpy as np

from assets.lake import SEGMENT_WINDOWS
from assets.metadata import MODEL_OWNERS, asset_tags, md_table, png, table_metadata
from assets.partitions import PREVIOUS_HOUR, START_MS, hourly_partitions, partition_hour
from ml.evaluate import plots
from ml.evaluate.content_tables import content_evaluation
from ml.io.gates import FailedGateError
from ml.io.lake import CONTENT_CTR_EVAL, CONTENT_CTR_MODEL, CONTENT_PREDICTIONS, partition_dir
from ml.models.content_ctr import ContentCTRConfig
from ml.models.content_losses import ContentLossConfig
from ml.train.content_publish import content_hour, publish_content_hour
from ml.train.content_train import ContentTrainConfig, ContentTrainer
from ml.train.publish import MissingPartitionError, json_safe
from resources.device import Device
from resources.storage import LakeStorage

FIGURE_ROOMS = 3  # rooms drawn in the predicted-vs-true plot (the paper's Figure 4)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CONTENT_CTR_MODEL,
            group_name="content",
            kinds={"pytorch"},
            owners=MODEL_OWNERS,
            tags=asset_tags("train", "model"),
            description="ContentCTR after training on the hour's segment windows, continuing "
            "from the previous hour's model (the first hour starts from a seeded "
            "initialisation): weights, optimizer state, random state, counters.",
            deps=[
                dg.AssetDep(CONTENT_CTR_MODEL, partition_mapping=PREVIOUS_HOUR),
                SEGMENT_WINDOWS,
            ],
        ),
        dg.AssetSpec(
            CONTENT_PREDICTIONS,
            group_name="content",
            kinds={"parquet"},
            owners=MODEL_OWNERS,
            tags=asset_tags("train", "evaluation"),
            description="Every segment window of the hour scored by the model as it stood "
            "before it trained on the hour: predicted CTR per segment beside the true one.",
        ),
    ],
    partitions_def=hourly_partitions,
    can_subset=False,
)
def content_ctr_training(context: dg.AssetExecutionContext, storage: LakeStorage, device: Device):
    _, hour_ms = partition_hour(context)
    lake = storage.store()
    trainer = ContentTrainer(
        ContentCTRConfig(), ContentLossConfig(), ContentTrainConfig(), device.torch_device()
    )
    try:
        predictions, stats = content_hour(lake, trainer, hour_ms, START_MS)
    except (MissingPartitionError, FailedGateError) as e:
        raise dg.Failure(str(e)) from e
    manifest = publish_content_hour(lake, trainer, hour_ms, predictions, stats)
    yield dg.MaterializeResult(
        asset_key=CONTENT_CTR_MODEL,
        metadata={
            "windows_trained": stats["windows"],
            "optimizer_steps": stats["steps"],
            "losses": md_table([{k: stats[k] for k in ("loss", "point", "pair", "align")}]),
            "checkpoint_bytes": manifest["checkpoint_bytes"],
            "total_steps": trainer.steps,
            "device": str(trainer.device),
        },
    )
    yield dg.MaterializeResult(
        asset_key=CONTENT_PREDICTIONS,
        metadata=table_metadata(predictions.schema, predictions.num_rows),
    )


@dg.asset(
    name=CONTENT_CTR_EVAL,
    group_name="content",
    kinds={"parquet"},
    owners=MODEL_OWNERS,
    tags=asset_tags("evaluate", "evaluation"),
    partitions_def=hourly_partitions,
    deps=[CONTENT_PREDICTIONS],
    description="How well the hour's content scores ranked the segments: Kendall's tau "
    "(globally over each window's last segment, and within each window), mean absolute "
    "error, mean prediction over mean CTR, and how well each room's highlights (its top "
    "30 % segments) come first; a plot of predicted against true CTR over time.",
)
def content_ctr_eval(context: dg.AssetExecutionContext, storage: LakeStorage):
    key, _ = partition_hour(context)
    lake = storage.store()
    rel = partition_dir(CONTENT_PREDICTIONS, key)
    if lake.manifest(rel) is None:
        raise dg.Failure(f"{CONTENT_PREDICTIONS} {key} is not materialized ({lake.url(rel)})")
    predictions = lake.read_published(rel)
    report = content_evaluation(predictions)
    lake.publish(partition_dir(CONTENT_CTR_EVAL, key), {}, json_safe(report | {"partition": key}))
    return dg.MaterializeResult(
        metadata={
            "kendall_tau": _num(report["tau"]),
            "kendall_tau_per_window": _num(report["tau_window_mean"]),
            "evaluation": md_table([{"hour": key, **report}]),
            "predicted_vs_true": png(_figure(predictions)),
        }
    )


def _last_segment(predictions, column: str) -> np.ndarray:
    flat = predictions.column(column).combine_chunks().flatten()
    return flat.to_numpy(zero_copy_only=False).reshape(predictions.num_rows, -1)[:, -1]


def _figure(predictions) -> bytes:
    """Predicted and true CTR of each window's last segment over time, for the rooms with
    the most windows (the paper's Figure 4)."""
    if predictions.num_rows == 0:
        return plots.line_plot([], {}, title="no windows this hour")
    room = predictions.column("room_id").to_numpy()
    end = predictions.column("end_segment_index").to_numpy()
    s, y = _last_segment(predictions, "p_ctr"), _last_segment(predictions, "ctr")
    rooms, counts = np.unique(room, return_counts=True)
    busiest = rooms[np.argsort(-counts, kind="stable")][:FIGURE_ROOMS]
    curves = {}
    for r in busiest:
        pick = np.flatnonzero(room == r)
        order = pick[np.argsort(end[pick])]
        curves[f"room {r} predicted"], curves[f"room {r} true"] = s[order], y[order]
    n = max(len(v) for v in curves.values())
    series = {k: list(v) + [float("nan")] * (n - len(v)) for k, v in curves.items()}
    return plots.line_plot(
        list(range(n)), series, title="Segment CTR, predicted vs true",
        xlabel="segment (window end, in order)", ylabel="CTR",
    )  # fmt: skip


def _num(v) -> float:
    return float(v) if v is not None and np.isfinite(v) else float("nan")
