"""The Moment side, hourly: exposures with real-time features, the three label streams,
final outcomes (thin wrappers over ml.data.live_hour)."""

import dagster as dg
import pyarrow as pa

from assets.activity import ACTIVITY, ACTIVITY_FOR_EXPOSURES, activity_before
from assets.ingestion import CATALOG, RAW_ASSETS
from assets.metadata import md_table
from assets.partitions import hourly_partitions, partition_hour
from assets.windows import read_window, window_keys
from ml import schema as S
from ml.data.features import SV_COLUMNS
from ml.data.landing import CorruptFileError, MissingLandingHourError
from ml.data.live_hour import (
    LATE_IMPRESSION_HOURS,
    LOOKBACK_HOURS,
    OUTCOME_LOOKAHEAD_HOURS,
    label_hour,
    outcome_hour,
)
from ml.data.segments import build_segments
from ml.data.sessions import TASKS
from ml.hours import landing_dir
from ml.io.lake import partition_dir, quarantine_dir
from ml.io.store import StorageError, parquet_bytes, parquet_parts
from resources.storage import LakeStorage, LandingZone

RAW_LIVE, RAW_SV = RAW_ASSETS[S.LIVE], RAW_ASSETS[S.SHORT_VIDEO]
STREAMS = {"moment_samples": "moment", "fast_samples": "fast", "slow_samples": "slow"}
LOOKBACK = dg.TimeWindowPartitionMapping(start_offset=-LOOKBACK_HOURS, end_offset=0)
SEGMENT_WINDOW = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0)
OUTCOME_WINDOW = dg.TimeWindowPartitionMapping(
    start_offset=-LATE_IMPRESSION_HOURS, end_offset=OUTCOME_LOOKAHEAD_HOURS
)


def _rates_table(stats: dict) -> dg.MetadataValue:
    rows = [
        {
            "task": t,
            **{
                s: f"{stats[f'{s}_{t}_rate']:.4f} ({stats[f'{s}_{t}_labels']})"
                for s in STREAMS.values()
            },
        }
        for t in TASKS
    ]
    return md_table(rows, ["task", *STREAMS.values()])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "live_exposures",
            group_name="moment",
            kinds={"parquet"},
            description="One row per live impression reported in H, with features as of t0: "
            "ids, context, user aggregates, real-time room stats at 30 s and 5 min freshness.",
            deps=[
                dg.AssetDep(RAW_LIVE, partition_mapping=LOOKBACK),
                dg.AssetDep(RAW_SV, partition_mapping=LOOKBACK),
                dg.AssetDep(ACTIVITY, partition_mapping=ACTIVITY_FOR_EXPOSURES),
            ],
        ),
        *[
            dg.AssetSpec(
                name,
                group_name="moment",
                kinds={"parquet"},
                description=f"The {stream} label stream, samples emitted in H (DESIGN §7.1).",
                deps=[dg.AssetDep(RAW_LIVE, partition_mapping=LOOKBACK)],
            )
            for name, stream in STREAMS.items()
        ],
    ],
    partitions_def=hourly_partitions,
    can_subset=False,
)
def moment_streams(context: dg.AssetExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    keys = window_keys(hour_ms, LOOKBACK_HOURS)
    sv = read_window(lake, RAW_SV, keys, columns=SV_COLUMNS)
    activity = activity_before(lake, hour_ms)
    res = label_hour(read_window(lake, RAW_LIVE, keys), sv, hour_ms, activity)
    if not res.conserved():
        raise RuntimeError(f"live_exposures {key}: impressions not conserved")
    stats = res.stats
    man = {
        "partition": key,
        "raw_window": keys,
        **stats,
        "impressions_reported": res.impressions_reported,
    }
    written = lake.publish(partition_dir("live_exposures", key), parquet_parts(res.exposures), man)
    yield dg.MaterializeResult(
        asset_key="live_exposures",
        metadata={
            "dagster/row_count": res.exposures.num_rows,
            "impressions_reported": res.impressions_reported,
            "beyond_lookback": res.beyond_lookback,
            "bytes_written": written,
            "raw_window": f"{keys[0]} .. {keys[-1]}",
            "preview": md_table(
                res.exposures.slice(0, 5).select(res.exposures.column_names[:12]).to_pylist()
            ),
        },
    )
    for name, stream in STREAMS.items():
        table = getattr(res, stream)
        written = lake.publish(partition_dir(name, key), parquet_parts(table), man)
        meta = {
            "dagster/row_count": table.num_rows,
            "bytes_written": written,
            "label_rates": _rates_table(stats),
        }
        if stream == "moment":
            meta["volume_vs_exposures"] = table.num_rows / max(res.exposures.num_rows, 1)
        yield dg.MaterializeResult(asset_key=name, metadata=meta)


@dg.asset(
    group_name="moment",
    kinds={"parquet"},
    partitions_def=hourly_partitions,
    deps=[dg.AssetDep(RAW_LIVE, partition_mapping=OUTCOME_WINDOW)],
    description="Final labels per exposure reported in H (reads later raw hours); evaluation only, never a training input.",
)
def live_outcomes(context: dg.AssetExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    keys = window_keys(hour_ms, LATE_IMPRESSION_HOURS, OUTCOME_LOOKAHEAD_HOURS)
    table, beyond = outcome_hour(read_window(lake, RAW_LIVE, keys), hour_ms)
    rates = {
        t: float(table.column(f"y_{t}").to_numpy().mean()) if table.num_rows else 0.0 for t in TASKS
    }
    written = lake.publish(
        partition_dir("live_outcomes", key),
        parquet_parts(table),
        {"partition": key, "rates": rates},
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "beyond_lookback": beyond,
            "bytes_written": written,
            "final_label_rates": md_table([{"task": t, "rate": r} for t, r in rates.items()]),
        }
    )


@dg.asset(
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
    rel = f"landing/content/{landing_dir(hour_ms)}/segments.parquet"
    land = landing.store()
    if not land.exists(rel):
        raise MissingLandingHourError(f"missing landing hour: no {land.url(rel)}")
    try:
        content = land.read_parquet(rel)
    except StorageError as e:
        raise CorruptFileError(land.url(rel), str(e)) from e
    rooms = lake.read_parquet(f"{partition_dir(CATALOG)}/rooms.parquet", ["item_id", "start_ms"])
    live = read_window(lake, RAW_LIVE, window_keys(hour_ms, 1))
    table, quarantine, stats = build_segments(content, live, rooms, hour_ms)
    written = lake.publish(partition_dir("live_segments", key), parquet_parts(table), stats)
    q = pa.Table.from_pandas(quarantine, preserve_index=False)
    lake.publish(
        quarantine_dir("live_segments", key), {"part-00000.parquet": parquet_bytes(q)}, stats
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            **{k: v for k, v in stats.items() if k != "segments"},
            "quarantine_reasons": md_table(
                quarantine.reason.value_counts()
                .rename_axis("reason")
                .reset_index()
                .to_dict("records")
            ),
            "bytes_written": written,
            "preview": md_table(
                table.select(["room_id", "segment_index", "shows", "enters", "ctr"])
                .slice(0, 5)
                .to_pylist()
            ),
        }
    )
