"""Users' activity so far (hourly, self-dependent): the lifetime counters that
``live_exposures`` reads as its "activity so far" user aggregates (thin wrapper over
ml.data.activity)."""

import dagster as dg
import pandas as pd
import pyarrow as pa

from assets.checks import check_result
from assets.ingestion import RAW_ASSETS
from assets.metadata import md_table
from assets.partitions import PREVIOUS_HOUR, START_MS, hourly_partitions, partition_hour
from assets.windows import read_window
from ml import quality
from ml import schema as S
from ml.data.activity import (
    ACTIVITY_SCHEMA,
    COUNTERS,
    LIVE_COLUMNS,
    SV_COLUMNS,
    ActivityBefore,
    accumulate,
    conservation_stats,
    hour_counts,
    totals_by_user,
)
from ml.data.live_hour import LOOKBACK_HOURS, activity_since
from ml.hours import HOUR_MS, partition_key
from ml.io.lake import partition_dir
from ml.io.store import Store, parquet_bytes
from resources.storage import LakeStorage

ACTIVITY = "user_activity"
RAW_LIVE, RAW_SV = RAW_ASSETS[S.LIVE], RAW_ASSETS[S.SHORT_VIDEO]
# live_exposures[H] reads the snapshot of everything reported before H - 3 h.
ACTIVITY_FOR_EXPOSURES = dg.TimeWindowPartitionMapping(
    start_offset=-LOOKBACK_HOURS, end_offset=-LOOKBACK_HOURS,
    allow_nonexistent_upstream_partitions=True,
)  # fmt: skip


def read_activity(lake: Store, hour_ms: int) -> pa.Table | None:
    """user_activity[H] (None before the first partition: nothing was reported yet)."""
    if hour_ms < START_MS:
        return None
    key = partition_key(hour_ms)
    rel = partition_dir(ACTIVITY, key)
    if lake.manifest(rel) is None:
        raise dg.Failure(
            f"{ACTIVITY} {key} is not materialized ({lake.url(rel)}): materialize the hours "
            "in order (a backfill over the range does)"
        )
    return lake.read_published(rel, schema=ACTIVITY_SCHEMA)


def activity_before(lake: Store, hour_ms: int) -> ActivityBefore:
    """The counters live_exposures[H] starts from: user_activity[H - LOOKBACK_HOURS]."""
    return ActivityBefore(
        activity_since(hour_ms), read_activity(lake, hour_ms - LOOKBACK_HOURS * HOUR_MS)
    )


def _hour(lake: Store, key: str) -> pa.Table:
    return hour_counts(
        read_window(lake, RAW_LIVE, [key], columns=LIVE_COLUMNS),
        read_window(lake, RAW_SV, [key], columns=SV_COLUMNS),
    )


@dg.asset(
    name=ACTIVITY,
    group_name="moment",
    kinds={"parquet"},
    partitions_def=hourly_partitions,
    deps=[RAW_LIVE, RAW_SV, dg.AssetDep(ACTIVITY, partition_mapping=PREVIOUS_HOUR)],
    description="Per user, lifetime counts of live impressions and enters and short-video plays "
    "and long views reported up to the end of H: user_activity[H-1] + raw H.",
)
def user_activity(context: dg.AssetExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    previous = read_activity(lake, hour_ms - HOUR_MS)
    hour = _hour(lake, key)
    table = accumulate(previous, hour)
    added = totals_by_user(hour)
    man = {
        "partition": key,
        "users": table.num_rows,
        "added": added,
        "totals": totals_by_user(table),
    }
    written = lake.publish(
        partition_dir(ACTIVITY, key), {"part-00000.parquet": parquet_bytes(table)}, man
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "users_active_in_hour": hour.num_rows,
            "bytes_written": written,
            "counters": md_table(
                [
                    {"counter": c, "added in H": added[c], "total": man["totals"][c]}
                    for c in COUNTERS
                ]
            ),
        }
    )


@dg.asset_check(
    asset=ACTIVITY,
    partitions_def=hourly_partitions,
    blocking=True,
    description="Conservation: every user's counters are exactly user_activity[H-1] + the events "
    "of raw H (recounted); none decreases; one sorted row per user.",
)
def activity_accumulates(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    now = read_activity(lake, hour_ms)
    before = read_activity(lake, hour_ms - HOUR_MS)
    hour = _hour(lake, key)
    stats = conservation_stats(now, before, hour)
    outcome = quality.validate(
        pd.DataFrame([stats]),
        [quality.rate_expectation(c, 0, 0) for c in stats],
        "user_activity_conservation",
    )
    return check_result(
        outcome, users=now.num_rows, **{f"added_{c}": v for c, v in totals_by_user(hour).items()}
    )
