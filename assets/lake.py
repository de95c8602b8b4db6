"""The lake as the assets see it: every asset's name (defined here once), "this published
partition or a clear failure naming it", publishing a table (and its quarantine), and
reading look-back windows of hourly partitions."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
import pyarrow as pa

from assets.gates import CHECKING
from assets.partitions import START_MS
from ml import schema as S
from ml.hours import HOUR_MS, partition_key
from ml.io.gates import FailedGateError, require_gates
from ml.io.lake import (
    CATALOG,
    EXPOSURE_SEQUENCES,
    LIVE_EXPOSURES,
    LIVE_OUTCOMES,
    LIVE_PREDICTIONS,
    LIVE_SEGMENTS,
    MOMENT_CROSS_EVAL,
    MOMENT_CROSS_MODEL,
    RAW_LIVE,
    RAW_SV,
    SAMPLE_TABLES,
    SEGMENT_WINDOWS,
    USER_ACTIVITY,
    USER_HISTORY,
    partition_dir,
    quarantine_dir,
    variant_dir,
)
from ml.io.store import Store, parquet_bytes, parquet_parts

# ---- asset names (the lake's tables, ml.io.lake) ------------------------------------------
RAW_ASSETS = {S.LIVE: RAW_LIVE, S.SHORT_VIDEO: RAW_SV}
STREAM_ASSETS = SAMPLE_TABLES  # stream -> its samples
STREAMS = {asset: stream for stream, asset in SAMPLE_TABLES.items()}  # samples -> stream
FAST_SAMPLES = SAMPLE_TABLES["fast"]

# What to do about a missing upstream partition, by how it is read.
IN_ORDER_HINT = "materialize the hours in order (a backfill over the range does)"


def require_published(lake: Store, asset: str, key: str | None = None, hint: str = "") -> dict:
    """The manifest of a published partition (``key`` None: an unpartitioned asset), or a
    Failure that names the asset, the partition, where it was looked for and what to do."""
    rel = partition_dir(asset, key)
    what = asset if key is None else f"{asset} {key}"
    man = lake.manifest(rel)
    if man is None:
        raise dg.Failure(
            f"{what} is not materialized ({lake.url(rel)}){': ' + hint if hint else ''}"
        )
    gated_read(lake, rel, man, what, asset)
    return man


def gated_read(lake: Store, rel: str, man: dict, what: str, asset: str) -> None:
    """Refuse a partition a blocking check failed on (in any run), except to its own checks."""
    if CHECKING.get() == asset:
        return
    try:
        require_gates(lake, rel, man, what)
    except FailedGateError as e:
        raise dg.Failure(str(e)) from e


def publish_table(
    lake: Store,
    asset: str,
    key: str | None,
    table: pa.Table,
    manifest: dict,
    quarantine: pa.Table | None = None,
) -> int:
    """Publish ``table`` (in row-group-sized parts) as the whole partition, and its
    quarantine table when given; returns the bytes written."""
    written = lake.publish(partition_dir(asset, key), parquet_parts(table), manifest)
    if quarantine is not None:
        publish_quarantine(lake, asset, key, quarantine, manifest)
    return written


def publish_quarantine(
    lake: Store, asset: str, key: str | None, quarantine: pa.Table, manifest: dict
) -> None:
    lake.publish(
        quarantine_dir(asset, key), {"part-00000.parquet": parquet_bytes(quarantine)}, manifest
    )


def window_keys(hour_ms: int, before: int, after: int = 0) -> list[str]:
    """Partition keys H - before .. H + after that exist (none before LIVECROSS_START)."""
    hours = [hour_ms + i * HOUR_MS for i in range(-before, after + 1)]
    return [partition_key(h) for h in hours if h >= START_MS]


def read_window(
    lake: Store,
    asset: str,
    keys: Iterable[str],
    columns: list[str] | None = None,
    schema: pa.Schema = S.CLEAN_EVENT_SCHEMA,
) -> pa.Table:
    """The published partitions ``keys`` of ``asset`` (raw events by default) in one
    table; a missing one fails naming it and the window it belongs to."""
    keys = list(keys)
    tables = []
    for key in keys:
        window = f"{keys[0]} .. {keys[-1]}"
        require_published(
            lake,
            asset,
            key,
            f"this asset reads {asset} {window}: materialize (backfill) those first",
        )
        tables.append(
            lake.read_published(partition_dir(asset, key), columns=columns, schema=schema)
        )
    if tables:
        return pa.concat_tables(tables)
    return (
        pa.schema([schema.field(c) for c in columns]).empty_table()
        if columns
        else schema.empty_table()
    )


def read_partition(
    lake: Store, asset: str, key: str | None, columns: list[str] | None = None, **kw
) -> pa.Table:
    """One published partition (a clear failure when it is not published)."""
    require_published(lake, asset, key)
    return lake.read_published(partition_dir(asset, key), columns=columns, **kw)


__all__ = [
    "CATALOG", "EXPOSURE_SEQUENCES", "FAST_SAMPLES", "IN_ORDER_HINT", "LIVE_EXPOSURES",
    "LIVE_OUTCOMES", "LIVE_PREDICTIONS", "LIVE_SEGMENTS", "MOMENT_CROSS_EVAL",
    "MOMENT_CROSS_MODEL", "RAW_ASSETS", "RAW_LIVE", "RAW_SV", "SEGMENT_WINDOWS", "STREAMS", "STREAM_ASSETS",
    "USER_ACTIVITY", "USER_HISTORY", "publish_quarantine", "publish_table", "read_partition",
    "read_variant_partition", "read_window", "require_published", "window_keys",
]  # fmt: skip


def read_variant_partition(
    lake: Store, asset: str, variant: str, key: str, schema: pa.Schema | None = None
) -> pa.Table:
    """One published partition of a model asset's variant, or a Failure naming it."""
    rel = variant_dir(asset, variant, key)
    man = lake.manifest(rel)
    if man is None:
        raise dg.Failure(f"{asset} {key} ({variant}) is not materialized ({lake.url(rel)})")
    gated_read(lake, rel, man, f"{asset} {key} ({variant})", asset)
    return lake.read_published(rel, schema=schema)
