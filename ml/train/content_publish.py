"""One hour of ContentCTR against the lake: resume content_ctr_model[H-1], score the
windows of H with it (content_predictions[H]: out of sample, the model had not trained on
them), train on them, publish the checkpoint and the predictions (what the assets run)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from ml.hours import HOUR_MS, partition_key
from ml.io.gates import require_gates
from ml.io.lake import CONTENT_CTR_MODEL, CONTENT_PREDICTIONS, SEGMENT_WINDOWS, partition_dir
from ml.io.store import Store, parquet_parts
from ml.train.checkpoint import CHECKPOINT_FILE, checkpoint_bytes, load_checkpoint
from ml.train.content_tensors import content_batch
from ml.train.content_train import ContentTrainer
from ml.train.publish import IN_ORDER, MissingPartitionError, json_safe


def _published(lake: Store, asset: str, key: str, why: str) -> dict:
    rel = partition_dir(asset, key)
    man = lake.manifest(rel)
    if man is None:
        raise MissingPartitionError(
            f"{asset} {key} is not materialized ({lake.url(rel)}): {why}; {IN_ORDER}"
        )
    require_gates(lake, rel, man, f"{asset} {key}")
    return man


def content_hour(
    lake: Store, trainer: ContentTrainer, hour_ms: int, start_ms: int
) -> tuple[pa.Table, dict]:
    """Resume, score, train (nothing published): -> (predictions of H, stats)."""
    key = partition_key(hour_ms)
    if hour_ms > start_ms:
        prev = partition_key(hour_ms - HOUR_MS)
        _published(lake, CONTENT_CTR_MODEL, prev, "model[H] starts from model[H-1]")
        rel = partition_dir(CONTENT_CTR_MODEL, prev)
        trainer.load_state(load_checkpoint(lake.read_bytes(f"{rel}/{CHECKPOINT_FILE}")))
    _published(lake, SEGMENT_WINDOWS, key, "the model of this hour trains on them")
    windows = lake.read_published(partition_dir(SEGMENT_WINDOWS, key))
    batch = content_batch(windows) if windows.num_rows else None
    w = trainer.model_cfg.window
    if batch is None:
        pred = np.zeros((0, w), np.float32)
        stats = {"loss": 0.0, "point": 0.0, "pair": 0.0, "align": 0.0, "steps": 0}
        trainer.hours += 1
    else:
        pred = trainer.predict(batch).numpy()  # before training on the hour: out of sample
        stats = trainer.train_hour(batch)
    predictions = pa.table(
        {
            "room_id": windows.column("room_id"),
            "author_id": windows.column("author_id"),
            "end_segment_index": windows.column("end_segment_index"),
            "end_ms": windows.column("end_ms"),
            "p_ctr": pa.FixedSizeListArray.from_arrays(pa.array(pred.reshape(-1), pa.float32()), w),
            "ctr": windows.column("ctr"),
            "shows": windows.column("shows"),
        }
    )
    return predictions, stats | {"windows": int(windows.num_rows)}


def publish_content_hour(
    lake: Store, trainer: ContentTrainer, hour_ms: int, predictions: pa.Table, stats: dict
) -> dict:
    """Publish content_ctr_model[H] (the checkpoint) and content_predictions[H]."""
    key = partition_key(hour_ms)
    manifest = json_safe(
        {
            "partition": key,
            "config": {
                "model": dataclasses.asdict(trainer.model_cfg),
                "loss": dataclasses.asdict(trainer.loss_cfg),
                "train": dataclasses.asdict(trainer.cfg),
            },
            **stats,
            "total_steps": trainer.steps,
        }
    )
    manifest["checkpoint_bytes"] = lake.publish(
        partition_dir(CONTENT_CTR_MODEL, key),
        {CHECKPOINT_FILE: checkpoint_bytes(trainer.state())},
        manifest,
    )
    lake.publish(partition_dir(CONTENT_PREDICTIONS, key), parquet_parts(predictions), manifest)
    return manifest
