"""One hour of a variant's streaming training against the lake: read model[H-1], replay
H, publish the checkpoint and the predictions (what the Dagster asset and the torchrun
entry point both run; under DDP only rank 0 publishes)."""

from __future__ import annotations

import dataclasses

from ml.cross.catalog_view import read_catalog
from ml.hours import HOUR_MS, partition_key
from ml.io.gates import require_gates
from ml.io.lake import (
    CATALOG,
    EXPOSURE_SEQUENCES,
    LIVE_EXPOSURES,
    LIVE_PREDICTIONS,
    MOMENT_CROSS_MODEL,
    SAMPLE_TABLES,
    partition_dir,
    variant_dir,
)
from ml.io.store import Store, parquet_parts
from ml.train.checkpoint import CHECKPOINT_FILE, checkpoint_bytes, load_checkpoint
from ml.train.hour_data import hour_data
from ml.train.stream import HourResult, StreamTrainer

IN_ORDER = "materialize the hours in order (a backfill over the range does)"


class MissingPartitionError(FileNotFoundError):
    """An upstream partition the hour needs is not published."""


class LakeHourReader:
    """The trainer's view of the lake: published partitions, or an error naming the one
    that is missing."""

    def __init__(self, lake: Store):
        self.lake = lake

    def read(
        self, asset: str, key: str, columns: list[str] | None = None,
        why: str = "the model of this hour reads it",
    ):  # fmt: skip
        """Published partition ``key`` of ``asset`` whose gates hold, or an error naming it."""
        rel = partition_dir(asset, key)
        man = self.lake.manifest(rel)
        if man is None:
            raise MissingPartitionError(
                f"{asset} {key} is not materialized ({self.lake.url(rel)}): {why}; {IN_ORDER}"
            )
        require_gates(self.lake, rel, man, f"{asset} {key}")
        return self.lake.read_published(rel, columns=columns)

    def samples(self, stream: str, key: str, columns: list[str]):
        return self.read(SAMPLE_TABLES[stream], key, columns)

    def exposures(self, key: str, columns: list[str] | None = None):
        return self.read(LIVE_EXPOSURES, key, columns)

    def sequences(self, key: str):
        return self.read(EXPOSURE_SEQUENCES, key)


def window_keys(hour_ms: int, before: int, start_ms: int) -> list[str]:
    """Partition keys H - before .. H, none before the first partition."""
    hours = [hour_ms - i * HOUR_MS for i in range(before, -1, -1)]
    return [partition_key(h) for h in hours if h >= start_ms]


def previous_checkpoint(lake: Store, variant: str, hour_ms: int, start_ms: int) -> dict | None:
    """The checkpoint of model[H-1, variant]; None for the first partition."""
    if hour_ms <= start_ms:
        return None
    prev = partition_key(hour_ms - HOUR_MS)
    rel = variant_dir(MOMENT_CROSS_MODEL, variant, prev)
    if lake.manifest(rel) is None:
        raise MissingPartitionError(
            f"{MOMENT_CROSS_MODEL} {prev} ({variant}) is not materialized ({lake.url(rel)}): "
            f"model[H] starts from model[H-1]; {IN_ORDER}"
        )
    return load_checkpoint(lake.read_bytes(f"{rel}/{CHECKPOINT_FILE}"))


def read_hour_data(lake: Store, trainer: StreamTrainer, hour_ms: int, window: list[str]):
    """What ``trainer`` replays of hour H: the window's exposures, the hour's samples of its
    streams and the catalog of H, from published partitions whose gates hold."""
    key = partition_key(hour_ms)
    catalog_rel = partition_dir(CATALOG, key)
    catalog_man = lake.manifest(catalog_rel)
    if catalog_man is None:
        raise MissingPartitionError(
            f"{CATALOG} {key} is not materialized ({lake.url(catalog_rel)})"
        )
    require_gates(lake, catalog_rel, catalog_man, f"{CATALOG} {key}")
    return hour_data(
        LakeHourReader(lake), hour_ms, key, window,
        read_catalog(lake, catalog_rel), trainer.model_cfg, trainer.cfg,
    )  # fmt: skip


def train_hour(
    lake: Store, trainer: StreamTrainer, variant: str, hour_ms: int, window: list[str],
    start_ms: int, score: bool = True,
) -> HourResult:  # fmt: skip
    """Resume ``trainer`` from model[H-1] and replay hour H (nothing is published);
    ``score`` False: train only (a DDP process other than rank 0)."""
    prev = previous_checkpoint(lake, variant, hour_ms, start_ms)
    if prev is not None:
        trainer.load_state(prev)
    return trainer.run_hour(read_hour_data(lake, trainer, hour_ms, window), score=score)


def publish_hour(lake: Store, trainer: StreamTrainer, variant: str, res: HourResult) -> dict:
    """Publish model[H, variant] (the checkpoint) and its predictions; returns the manifest."""
    key = partition_key(trainer.counters.last_hour_ms)
    manifest = json_safe(
        {
            "partition": key,
            "variant": variant,
            "streams": list(trainer.cfg.streams),
            "config": {
                "model": dataclasses.asdict(trainer.model_cfg),
                "train": dataclasses.asdict(trainer.cfg),
            },
            **{k: v for k, v in res.stats.items() if k != "seconds"},
        }
    )
    manifest["checkpoint_bytes"] = lake.publish(
        variant_dir(MOMENT_CROSS_MODEL, variant, key),
        {CHECKPOINT_FILE: checkpoint_bytes(trainer.state())},
        manifest,
    )
    lake.publish(
        variant_dir(LIVE_PREDICTIONS, variant, key), parquet_parts(res.predictions), manifest
    )
    return manifest


def json_safe(obj):
    """Strict JSON for manifests: numpy scalars to Python, NaN (a one-class AUC) to null."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
