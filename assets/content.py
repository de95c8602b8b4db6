"""The content stage, hourly: per room per 30 s segment, shows, enters, CTR and the
multimodal features ContentCTR learns from (thin wrappers over ml.content).

Blocking checks: segment CTR, no null / non-finite / wrong-width vector published, and
rows in the landing file = clean + quarantined.
"""

import io

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from assets.lake import (
    CATALOG,
    LIVE_SEGMENTS,
    RAW_LIVE,
    publish_table,
    read_partition,
    read_window,
    require_published,
    window_keys,
)
from assets.metadata import check_result, md_table
from assets.partitions import hourly_partitions, partition_hour
from ml import quality
from ml.content.segments import (
    SEGMENT_TABLE_SCHEMA,
    VECTOR_COLUMNS,
    build_segments,
    landing_segments_path,
    quarantine_table,
    read_landing_segments,
    reason_counts,
)
from ml.io.lake import partition_dir, quarantine_dir
from ml.quality.content import (
    conservation_expectations,
    segment_expectations,
    vector_expectations,
    vector_figures,
)
from resources.storage import LakeStorage, LandingZone

SEGMENT_WINDOW = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0)


@dg.asset(
    name=LIVE_SEGMENTS,
    group_name="content",
    kinds={"parquet"},
    partitions_def=hourly_partitions,
    deps=[dg.AssetDep(RAW_LIVE, partition_mapping=SEGMENT_WINDOW), CATALOG],
    description="Per room per 30 s segment ending in H: shows, enters, CTR and the segment's "
    "visual/ASR/comment features from landing/content; bad rows (unknown room, outside the "
    "hour, a null/NaN/Inf/wrong-width vector, a repeat) quarantined with a reason.",
)
def live_segments(context: dg.AssetExecutionContext, storage: LakeStorage, landing: LandingZone):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    source = landing_segments_path(hour_ms)
    content = read_landing_segments(landing.store(), hour_ms)
    rooms = lake.read_parquet(f"{partition_dir(CATALOG)}/rooms.parquet", ["item_id", "start_ms"])
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
            "dagster/row_count": table.num_rows,
            **figures,
            "quarantined_by_reason": dg.MetadataValue.json(stats["reasons"]),
            "bad_embedding_faults": dg.MetadataValue.json(stats["bad_embedding"]),
            "quarantine_reasons": md_table(reason_counts(quarantine)),
            "quarantine_preview": md_table(
                quarantine[["row_number", "reason", "detail"]].head(5).to_dict("records")
            ),
            "bytes_written": written,
            "preview": md_table(
                table.select(["room_id", "segment_index", "shows", "enters", "ctr"])
                .slice(0, 5)
                .to_pylist()
            ),
        }
    )


@dg.asset_check(
    asset=LIVE_SEGMENTS,
    name="segment_ctr",
    partitions_def=hourly_partitions,
    blocking=True,
    description="Segment CTR in [0, 1], enters <= shows, and enough segments have shows.",
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


@dg.asset_check(
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


@dg.asset_check(
    asset=LIVE_SEGMENTS,
    name="segment_conservation",
    partitions_def=hourly_partitions,
    blocking=True,
    description="Rows in the landing segments.parquet (recounted) = published segments + "
    "quarantined rows, and the manifest's rows in = the recount.",
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
