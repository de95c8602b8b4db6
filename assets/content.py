"""The content stage, hourly: per room per 30 s segment, shows, enters, CTR and the
multimodal features ContentCTR learns from (thin wrappers over ml.content)."""

import dagster as dg

from assets.lake import CATALOG, LIVE_SEGMENTS, RAW_LIVE, publish_table, read_window, window_keys
from assets.metadata import check_result, md_table
from assets.partitions import hourly_partitions, partition_hour
from ml import quality
from ml.content.segments import (
    build_segments,
    quarantine_table,
    read_landing_segments,
    reason_counts,
)
from ml.io.lake import partition_dir
from ml.quality.content import segment_expectations
from resources.storage import LakeStorage, LandingZone

SEGMENT_WINDOW = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0)


@dg.asset(
    name=LIVE_SEGMENTS,
    group_name="content",
    kinds={"parquet"},
    partitions_def=hourly_partitions,
    deps=[dg.AssetDep(RAW_LIVE, partition_mapping=SEGMENT_WINDOW), CATALOG],
    description="Per room per 30 s segment ending in H: shows, enters, CTR and the segment's "
    "visual/ASR/comment features from landing/content.",
)
def live_segments(context: dg.AssetExecutionContext, storage: LakeStorage, landing: LandingZone):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    content = read_landing_segments(landing.store(), hour_ms)
    rooms = lake.read_parquet(f"{partition_dir(CATALOG)}/rooms.parquet", ["item_id", "start_ms"])
    live = read_window(lake, RAW_LIVE, window_keys(hour_ms, 1))
    table, quarantine, stats = build_segments(content, live, rooms, hour_ms)
    written = publish_table(
        lake, LIVE_SEGMENTS, key, table, stats, quarantine=quarantine_table(quarantine)
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            **{k: v for k, v in stats.items() if k != "segments"},
            "quarantine_reasons": md_table(reason_counts(quarantine)),
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


content_checks = [segment_ctr]
