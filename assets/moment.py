"""The Moment side, hourly: users' activity so far, exposures with real-time features,
the three label streams, final outcomes (thin wrappers over ml.moment)."""

import dagster as dg
import pyarrow as pa

from assets.lake import (
    IN_ORDER_HINT,
    LIVE_EXPOSURES,
    LIVE_OUTCOMES,
    RAW_LIVE,
    RAW_SV,
    STREAMS,
    USER_ACTIVITY,
    publish_table,
    read_window,
    require_published,
    window_keys,
)
from assets.metadata import md_table
from assets.partitions import PREVIOUS_HOUR, START_MS, hourly_partitions, partition_hour
from ml.hours import HOUR_MS, partition_key
from ml.io.lake import partition_dir
from ml.io.store import Store
from ml.moment.emission_hour import (
    LATE_IMPRESSION_HOURS,
    LOOKBACK_HOURS,
    OUTCOME_LOOKAHEAD_HOURS,
    activity_since,
    label_hour,
    outcome_hour,
)
from ml.moment.features import SV_COLUMNS
from ml.moment.user_activity import (
    ACTIVITY_LIVE_COLUMNS,
    ACTIVITY_SCHEMA,
    ACTIVITY_SV_COLUMNS,
    COUNTERS,
    ActivityBefore,
    accumulate,
    hour_counts,
    totals_by_user,
)
from ml.schema import TASKS
from resources.storage import LakeStorage

LOOKBACK = dg.TimeWindowPartitionMapping(start_offset=-LOOKBACK_HOURS, end_offset=0)
OUTCOME_WINDOW = dg.TimeWindowPartitionMapping(
    start_offset=-LATE_IMPRESSION_HOURS, end_offset=OUTCOME_LOOKAHEAD_HOURS
)
# live_exposures[H] reads the snapshot of everything reported before H - 3 h.
ACTIVITY_FOR_EXPOSURES = dg.TimeWindowPartitionMapping(
    start_offset=-LOOKBACK_HOURS, end_offset=-LOOKBACK_HOURS,
    allow_nonexistent_upstream_partitions=True,
)  # fmt: skip


# ---- user_activity ------------------------------------------------------------------------
def read_activity(lake: Store, hour_ms: int) -> pa.Table | None:
    """user_activity[H] (None before the first partition: nothing was reported yet)."""
    if hour_ms < START_MS:
        return None
    key = partition_key(hour_ms)
    require_published(lake, USER_ACTIVITY, key, IN_ORDER_HINT)
    return lake.read_published(partition_dir(USER_ACTIVITY, key), schema=ACTIVITY_SCHEMA)


def activity_before(lake: Store, hour_ms: int) -> ActivityBefore:
    """The counters live_exposures[H] starts from: user_activity[H - LOOKBACK_HOURS]."""
    return ActivityBefore(
        activity_since(hour_ms), read_activity(lake, hour_ms - LOOKBACK_HOURS * HOUR_MS)
    )


def activity_hour(lake: Store, key: str) -> pa.Table:
    """The counters of the events of raw hour ``key`` alone."""
    return hour_counts(
        read_window(lake, RAW_LIVE, [key], columns=ACTIVITY_LIVE_COLUMNS),
        read_window(lake, RAW_SV, [key], columns=ACTIVITY_SV_COLUMNS),
    )


@dg.asset(
    name=USER_ACTIVITY,
    group_name="moment",
    kinds={"parquet"},
    partitions_def=hourly_partitions,
    deps=[RAW_LIVE, RAW_SV, dg.AssetDep(USER_ACTIVITY, partition_mapping=PREVIOUS_HOUR)],
    description="Per user, lifetime counts of live impressions and enters and short-video plays "
    "and long views reported up to the end of H: user_activity[H-1] + raw H.",
)
def user_activity(context: dg.AssetExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    hour = activity_hour(lake, key)
    table = accumulate(read_activity(lake, hour_ms - HOUR_MS), hour)
    added = totals_by_user(hour)
    man = {
        "partition": key,
        "users": table.num_rows,
        "added": added,
        "totals": totals_by_user(table),
    }
    written = publish_table(lake, USER_ACTIVITY, key, table, man)
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


# ---- exposures and the label streams ------------------------------------------------------
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
            LIVE_EXPOSURES,
            group_name="moment",
            kinds={"parquet"},
            description="One row per live impression reported in H, with features as of t0: "
            "ids, context, user aggregates, real-time room stats at 30 s and 5 min freshness.",
            deps=[
                dg.AssetDep(RAW_LIVE, partition_mapping=LOOKBACK),
                dg.AssetDep(RAW_SV, partition_mapping=LOOKBACK),
                dg.AssetDep(USER_ACTIVITY, partition_mapping=ACTIVITY_FOR_EXPOSURES),
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
        raise RuntimeError(f"{LIVE_EXPOSURES} {key}: impressions not conserved")
    stats = res.stats
    man = {
        "partition": key,
        "raw_window": keys,
        **stats,
        "impressions_reported": res.impressions_reported,
    }
    written = publish_table(lake, LIVE_EXPOSURES, key, res.exposures, man)
    yield dg.MaterializeResult(
        asset_key=LIVE_EXPOSURES,
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
        written = publish_table(lake, name, key, table, man)
        meta = {
            "dagster/row_count": table.num_rows,
            "bytes_written": written,
            "label_rates": _rates_table(stats),
        }
        if stream == "moment":
            meta["volume_vs_exposures"] = table.num_rows / max(res.exposures.num_rows, 1)
        yield dg.MaterializeResult(asset_key=name, metadata=meta)


@dg.asset(
    name=LIVE_OUTCOMES,
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
    written = publish_table(lake, LIVE_OUTCOMES, key, table, {"partition": key, "rates": rates})
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "beyond_lookback": beyond,
            "bytes_written": written,
            "final_label_rates": md_table([{"task": t, "rate": r} for t, r in rates.items()]),
        }
    )
