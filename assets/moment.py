"""The Moment side, hourly: users' activity so far, exposures with real-time features,
the three label streams, final outcomes (thin wrappers over ml.moment)."""

import time

import dagster as dg
import numpy as np
import pyarrow as pa

from assets.automation import when_look_ahead_exists
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
from assets.metadata import (
    DATA_OWNERS,
    asset_tags,
    md_table,
    png,
    preview,
    speed,
    table_metadata,
)
from assets.partitions import PREVIOUS_HOUR, START_MS, hourly_partitions, partition_hour
from ml.evaluate import plots
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

# outcomes[H] reads raw live H - LATE_IMPRESSION_HOURS .. H + OUTCOME_LOOKAHEAD_HOURS; its
# declared dependency is the newest of them (see assets.partitions: the raw chain implies
# the older ones), so it waits for the look-ahead instead of failing without it.
OUTCOME_LOOKAHEAD = dg.TimeWindowPartitionMapping(
    start_offset=OUTCOME_LOOKAHEAD_HOURS, end_offset=OUTCOME_LOOKAHEAD_HOURS
)


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
    owners=DATA_OWNERS,
    tags=asset_tags("moment", "feature"),
    partitions_def=hourly_partitions,
    deps=[RAW_LIVE, RAW_SV, dg.AssetDep(USER_ACTIVITY, partition_mapping=PREVIOUS_HOUR)],
    description="One row per user: how many live impressions and room enters, short-video "
    "plays and long views the user has had in total, counting everything reported up to the "
    "end of the hour (the previous hour's totals plus this hour's events).",
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
            **table_metadata(table.schema, table.num_rows),
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


def _rates_plot(stats: dict) -> dg.MetadataValue:
    """The positive rate of each task in each stream, side by side (log scale: click ~1e-1,
    gift ~1e-3)."""
    rates = {s: [stats[f"{s}_{t}_rate"] for t in TASKS] for s in STREAMS.values()}
    title = "Positive label rate per task and stream"
    return png(plots.bar_plot(list(TASKS), rates, title, "positives / labelled", log=True))


def _per_5_minutes_plot(exposures: pa.Table, hour_ms: int, key: str) -> dg.MetadataValue:
    """Impressions of the hour per 5 minutes of their report time."""
    t = exposures.column("impression_report_ms").to_numpy()
    counts = np.bincount(np.clip((t - hour_ms) // 300_000, 0, 11), minlength=12)
    labels = [f":{m:02d}" for m in range(0, 60, 5)]
    title = f"Live impressions per 5 minutes, {key}"
    return png(plots.bar_plot(labels, {"impressions": counts}, title, "impressions"))


# What each label stream is, for its asset's description.
_STREAM_WORDS = {
    "fast": "Fast label stream: one training sample per live impression, sent 5 minutes "
    "after it, every task labelled by what had been reported by then.",
    "slow": "Slow label stream: the late positives, sent 1 hour after the impression: the "
    "tasks whose first positive arrived between 5 minutes and 1 hour after it (the fast "
    "stream's misses) labelled positive, the other tasks masked.",
    "moment": "Moment label stream (every 30 s): a sample the moment a task first turns "
    "positive (that task labelled, the others masked) and one when the viewing session ends "
    "(every task still negative labelled 0), so each exposure gets one label per task.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            LIVE_EXPOSURES,
            group_name="moment",
            kinds={"parquet"},
            owners=DATA_OWNERS,
            tags=asset_tags("moment", "feature"),
            description="One row per live-room impression reported during the hour, with the "
            "features known at the moment it was shown (t0): ids, page, the user's activity so "
            "far, and the room's real-time stats as a feature service refreshing every 30 s "
            "and every 5 minutes would have served them.",
            # Reads raw H-LOOKBACK_HOURS .. H and user_activity[H-LOOKBACK_HOURS]: implied
            # by raw[H] and user_activity[H] through their hour-to-hour chains.
            deps=[RAW_LIVE, RAW_SV, USER_ACTIVITY],
        ),
        *[
            dg.AssetSpec(
                name,
                group_name="moment",
                kinds={"parquet"},
                owners=DATA_OWNERS,
                tags=asset_tags("moment", "label"),
                description=f"{_STREAM_WORDS[stream]} Holds the samples sent during the hour.",
                deps=[RAW_LIVE],
            )
            for name, stream in STREAMS.items()
        ],
    ],
    partitions_def=hourly_partitions,
    # One pass builds all four tables; a run may ask for some (a backfill picked in the
    # UI does: Dagster's check of a non-subsettable multi-asset's targets misjudges equal
    # hour ranges as different once upstream assets are picked with it), and only those
    # are published.
    can_subset=True,
)
def moment_streams(context: dg.AssetExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    t_start = time.perf_counter()
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
    selected = {k.to_user_string() for k in context.selected_asset_keys}
    seconds = time.perf_counter() - t_start
    exposures = res.exposures
    if LIVE_EXPOSURES in selected:
        yield _exposures_result(lake, key, hour_ms, res, man, keys, seconds)
    rates_plot = _rates_plot(stats)
    for name, stream in STREAMS.items():
        if name not in selected:
            continue
        table = getattr(res, stream)
        written = publish_table(lake, name, key, table, man)
        meta = {
            **table_metadata(table.schema, table.num_rows),
            "bytes_written": written,
            # One number per task, so each charts over the partitions.
            **{f"label_rate/{t}": float(stats[f"{stream}_{t}_rate"]) for t in TASKS},
            "label_rates": _rates_table(stats),
            "label_rate_plot": rates_plot,
        }
        if stream == "moment":
            meta["volume_vs_exposures"] = table.num_rows / max(exposures.num_rows, 1)
        yield dg.MaterializeResult(asset_key=name, metadata=meta)


def _exposures_result(lake, key, hour_ms, res, man, keys, seconds) -> dg.MaterializeResult:
    written = publish_table(lake, LIVE_EXPOSURES, key, res.exposures, man)
    exposures = res.exposures
    return dg.MaterializeResult(
        asset_key=LIVE_EXPOSURES,
        metadata={
            **table_metadata(exposures.schema, exposures.num_rows),
            "impressions_reported": res.impressions_reported,
            "beyond_lookback": res.beyond_lookback,
            "bytes_written": written,
            "raw_window": f"{keys[0]} .. {keys[-1]}",
            "impressions_per_5_minutes": _per_5_minutes_plot(exposures, hour_ms, key),
            "preview": preview(exposures, columns=exposures.column_names[:12]),
            **speed(
                exposures_per_s=round(exposures.num_rows / max(seconds, 1e-9)),
                seconds=round(seconds, 3),
            ),
        },
    )


@dg.asset(
    name=LIVE_OUTCOMES,
    group_name="moment",
    kinds={"parquet"},
    owners=DATA_OWNERS,
    tags=asset_tags("moment", "label"),
    partitions_def=hourly_partitions,
    deps=[dg.AssetDep(RAW_LIVE, partition_mapping=OUTCOME_LOOKAHEAD)],
    automation_condition=when_look_ahead_exists(OUTCOME_LOOKAHEAD_HOURS),
    description="The final answer for every live impression reported during the hour: did the "
    "user click, watch long, like, comment, follow, gift. Written once the later hours are in "
    "(positives can arrive late); used to evaluate the models, never to train them.",
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
            **table_metadata(table.schema, table.num_rows),
            "beyond_lookback": beyond,
            "bytes_written": written,
            **{f"label_rate/{t}": r for t, r in rates.items()},
            "final_label_rates": md_table([{"task": t, "rate": r} for t, r in rates.items()]),
        }
    )
