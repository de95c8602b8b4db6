"""The content stage, hourly: per room per 30 s segment, shows, enters, CTR and the
multimodal features ContentCTR learns from (thin wrappers over ml.content).

Blocking checks: segment CTR, no null / non-finite / wrong-width vector published, and
rows in the landing file = clean + quarantined.
"""

import io

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from assets.gates import lake_check
from assets.lake import (
    CATALOG,
    LIVE_SEGMENTS,
    RAW_LIVE,
    SEGMENT_WINDOWS,
    publish_table,
    read_partition,
    read_window,
    require_published,
    window_keys,
)
from assets.metadata import (
    DATA_OWNERS,
    asset_tags,
    check_result,
    counts_table,
    md_table,
    preview,
    table_metadata,
)
from assets.partitions import hourly_partitions, partition_hour
from ml import quality
from ml.content.segments import (
    SEGMENT_TABLE_SCHEMA,
    VECTOR_COLUMNS,
    build_segments,
    landing_segments_path,
    quarantine_table,
    read_landing_segments,
)
from ml.content.windows import MIN_SHOWS, WINDOW, build_segment_windows
from ml.io.lake import partition_dir, quarantine_dir
from ml.quality.content import (
    conservation_expectations,
    segment_expectations,
    vector_expectations,
    vector_figures,
)
from resources.storage import LakeStorage, LandingZone


@dg.asset(
    name=LIVE_SEGMENTS,
    group_name="content",
    kinds={"parquet"},
    owners=DATA_OWNERS,
    tags=asset_tags("content", "feature"),
    partitions_def=hourly_partitions,
    deps=[RAW_LIVE, CATALOG],  # reads raw live H-1 .. H: raw[H] implies raw[H-1]
    description="One row per live room per 30-second segment ending in the hour: how often "
    "the room was shown and entered in that segment, its click-through rate, and what was on "
    "screen, said and commented (visual, speech and comment feature vectors). Bad rows (an "
    "unknown room, a segment outside the hour, a broken vector, a repeat) are set aside in the "
    "quarantine table with their reason.",
)
def live_segments(context: dg.AssetExecutionContext, storage: LakeStorage, landing: LandingZone):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    source = landing_segments_path(hour_ms)
    content = read_landing_segments(landing.store(), hour_ms)
    require_published(lake, CATALOG, key, "the hourly job materializes it before segments")
    rooms = lake.read_parquet(
        f"{partition_dir(CATALOG, key)}/rooms.parquet", ["item_id", "start_ms"]
    )
    live = read_window(lake, RAW_LIVE, window_keys(hour_ms, 1))
    table, quarantine, stats = build_segments(
        content, live, rooms, hour_ms, source=landing.store().url(source)
    )
    written = publish_table(
        lake, LIVE_SEGMENTS, key, table, stats, quarantine=quarantine_table(quarantine, source)
    )
    figures = {k: v for k, v in stats.items() if k not in ("segments", "reasons", "bad_embedding")}
    return dg.MaterializeResult(
        metadata={
            **table_metadata(table.schema, table.num_rows),
            **figures,
            "quarantine_rate": stats["quarantined"] / max(stats["content_rows"], 1),
            "quarantined_by_reason": dg.MetadataValue.json(stats["reasons"]),
            "bad_embedding_faults": dg.MetadataValue.json(stats["bad_embedding"]),
            "quarantine_reasons": counts_table(
                stats["reasons"], "reason", max(stats["content_rows"], 1)
            ),
            "quarantine_preview": md_table(
                quarantine[["row_number", "reason", "detail"]].head(5).to_dict("records")
            ),
            "bytes_written": written,
            "preview": preview(
                table,
                columns=["room_id", "segment_index", "segment_start_ms", "shows", "enters", "ctr"],
            ),
        }
    )


class WindowConfig(dg.Config):
    window: int = WINDOW  # consecutive 30 s segments per window
    min_shows: int = MIN_SHOWS  # shows the last segment needs for its CTR to be a target


@dg.asset(
    name=SEGMENT_WINDOWS,
    group_name="content",
    kinds={"parquet"},
    owners=DATA_OWNERS,
    tags=asset_tags("content", "feature"),
    partitions_def=hourly_partitions,
    deps=[LIVE_SEGMENTS, RAW_LIVE, CATALOG],  # reads segments and raw live of H-1 .. H
    description="What ContentCTR learns from: per live room, windows of 20 consecutive "
    "30-second segments whose last one ends in the hour, each segment with what was on "
    "screen, said and commented, its shows, enters and click-through rate, and the counts "
    "(impressions, enters, comments, gifts, likes, follows, exits) as they were known when "
    "the window ended.",
)
def segment_windows(context: dg.AssetExecutionContext, config: WindowConfig, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    keys = window_keys(hour_ms, 1)
    require_published(lake, CATALOG, key, "the hourly job materializes it before windows")
    starts = lake.read_parquet(
        f"{partition_dir(CATALOG, key)}/rooms.parquet", ["item_id", "start_ms"]
    )
    segments = read_window(lake, LIVE_SEGMENTS, keys, schema=SEGMENT_TABLE_SCHEMA)
    live = read_window(lake, RAW_LIVE, keys)
    table, stats = build_segment_windows(
        segments, live, starts, hour_ms, window=config.window, min_shows=config.min_shows
    )
    figures = stats.as_dict()
    written = publish_table(lake, SEGMENT_WINDOWS, key, table, figures)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(table.schema, table.num_rows),
            **figures,
            "rooms": len(set(table.column("room_id").to_pylist())),
            "window": config.window,
            "min_shows": config.min_shows,
            "bytes_written": written,
            "preview": preview(table, columns=["room_id", "end_segment_index", "end_ms"]),
        }
    )


@lake_check(
    asset=LIVE_SEGMENTS,
    name="segment_ctr",
    partitions_def=hourly_partitions,
    blocking=True,
    description="Segment click-through rate between 0 and 1, never more enters than shows, "
    "and enough segments were shown at all.",
)
def segment_ctr(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, _ = partition_hour(context)
    seg = (
        storage.store()
        .read_published(partition_dir(LIVE_SEGMENTS, key), columns=["shows", "enters", "ctr"])
        .to_pandas()
    )
    seg["shown_share"] = float((seg.shows > 0).mean()) if len(seg) else 0.0
    outcome = quality.validate(seg, segment_expectations(), "segment_ctr")
    return check_result(
        outcome, segments=len(seg), shown_share=float(seg.shown_share.iloc[0]) if len(seg) else 0.0
    )


@lake_check(
    asset=LIVE_SEGMENTS,
    name="finite_vectors",
    partitions_def=hourly_partitions,
    blocking=True,
    description="The published partition, read back: no null vector, no vector of the wrong "
    "width, no null element, no NaN or Inf in visual, asr or comment.",
)
def finite_vectors(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, _ = partition_hour(context)
    seg = read_partition(storage.store(), LIVE_SEGMENTS, key, columns=list(VECTOR_COLUMNS))
    figures = vector_figures(seg, SEGMENT_TABLE_SCHEMA)
    outcome = quality.validate(
        pd.DataFrame({k: [v] for k, v in figures.items()}), vector_expectations(), "segment_vectors"
    )
    return check_result(outcome, segments=seg.num_rows, **figures)


@lake_check(
    asset=LIVE_SEGMENTS,
    name="segment_conservation",
    partitions_def=hourly_partitions,
    blocking=True,
    description="Rows in the hour's landing segments file (recounted) = published segments "
    "+ quarantined rows, and the row count recorded at ingestion matches the recount.",
)
def segment_conservation(
    context: dg.AssetCheckExecutionContext, storage: LakeStorage, landing: LandingZone
):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    man = require_published(lake, LIVE_SEGMENTS, key)
    clean = read_partition(lake, LIVE_SEGMENTS, key, columns=["room_id"]).num_rows
    quarantined = lake.read_published(quarantine_dir(LIVE_SEGMENTS, key), columns=["reason"])
    data = landing.store().read_bytes(landing_segments_path(hour_ms))
    landing_rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
    unbalanced = abs(landing_rows - clean - quarantined.num_rows) + abs(
        man["content_rows"] - landing_rows
    )
    outcome = quality.validate(
        pd.DataFrame({"unbalanced_rows": [unbalanced]}),
        conservation_expectations(),
        "segment_conservation",
    )
    return check_result(
        outcome,
        landing_rows=landing_rows,
        clean=clean,
        quarantined=quarantined.num_rows,
        rows_in_recorded=man["content_rows"],
    )


content_checks = [segment_ctr, finite_vectors, segment_conservation]
