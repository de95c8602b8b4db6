"""Asset checks of the Moment side: GX suites (ml.quality.moment) inside Dagster checks.

Blocking: user activity conservation, mask invariants, label leakage (positives proven by
raw events reported by the label cutoff; features recomputed from the past only),
sample/exposure join completeness, label-rate bands and hour-over-hour drift of the fast
stream.
"""

import dagster as dg
import pandas as pd

from assets.gates import lake_check
from assets.lake import (
    FAST_SAMPLES,
    LIVE_EXPOSURES,
    RAW_LIVE,
    RAW_SV,
    STREAMS,
    USER_ACTIVITY,
    read_partition,
    read_window,
    window_keys,
)
from assets.metadata import check_result, md_table
from assets.moment import activity_before, activity_hour, read_activity
from assets.partitions import hourly_partitions, partition_hour
from ml import quality
from ml.hours import HOUR_MS, partition_key
from ml.io.lake import partition_dir
from ml.moment.emission_hour import LOOKBACK_HOURS
from ml.moment.features import EXPOSURE_SCHEMA, SV_COLUMNS
from ml.moment.user_activity import conservation_stats, totals_by_user
from ml.quality import moment as QL
from resources.storage import LakeStorage

DRIFT_HOURS = 3
FEATURE_SAMPLE = 50


@lake_check(
    asset=USER_ACTIVITY,
    partitions_def=hourly_partitions,
    blocking=True,
    description="Every user's totals are exactly the previous hour's totals plus this hour's "
    "events (recounted from the raw tables); no total goes down; one row per user, sorted.",
)
def activity_accumulates(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    now = read_activity(lake, hour_ms)
    before = read_activity(lake, hour_ms - HOUR_MS)
    hour = activity_hour(lake, key)
    stats = conservation_stats(now, before, hour)
    outcome = quality.validate(
        pd.DataFrame([stats]),
        [quality.rate_expectation(c, 0, 0) for c in stats],
        "user_activity_conservation",
    )
    return check_result(
        outcome, users=now.num_rows, **{f"added_{c}": v for c, v in totals_by_user(hour).items()}
    )


def build_stream_checks(asset: str, stream: str) -> list[dg.AssetChecksDefinition]:
    @lake_check(
        asset=asset,
        name="mask_invariants",
        partitions_def=hourly_partitions,
        blocking=True,
        description="Every sample labels at least one task and none outside its mask, with "
        "a label cutoff no later than the time it was sent; the fast stream labels every "
        "task, the slow one only late positives, the moment stream each task once.",
    )
    def mask_invariants(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, _ = partition_hour(context)
        samples = read_partition(storage.store(), asset, key)
        outcome = quality.validate(
            QL.mask_frame(samples), QL.mask_expectations(stream), f"{asset}_masks"
        )
        if stream == "moment":
            kinds = QL.moment_kind_frame(samples)
            outcome = quality.merge(
                outcome,
                quality.validate(
                    kinds,
                    [
                        quality.Expect(
                            "ExpectColumnValuesToBeInSet", {"column": c, "value_set": [True]}
                        )
                        for c in kinds.columns
                    ],
                    f"{asset}_kinds",
                ),
            )
        return check_result(outcome, samples=samples.num_rows)

    @lake_check(
        asset=asset,
        name="label_leakage",
        partitions_def=hourly_partitions,
        blocking=True,
        description="Each positive label is proven by a raw event of the same user and room "
        "reported no later than the sample's label cutoff, and every sample was sent during "
        "the hour.",
    )
    def label_leakage(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, hour_ms = partition_hour(context)
        lake = storage.store()
        samples = read_partition(lake, asset, key)
        live = read_window(lake, RAW_LIVE, window_keys(hour_ms, LOOKBACK_HOURS))
        frame = QL.evidence_frame(samples, live)
        frame["emit_ms"] = samples.column("emit_ms").to_numpy()
        outcome = quality.validate(
            frame,
            [
                quality.Expect(
                    "ExpectColumnValuesToBeInSet", {"column": "proven", "value_set": [True]}
                ),
                quality.Expect(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "emit_ms", "min_value": hour_ms, "max_value": hour_ms + HOUR_MS - 1},
                ),
            ],
            f"{asset}_leakage",
        )
        return check_result(outcome, positives_checked=int(frame.proven.size))

    @lake_check(
        asset=asset,
        name="join_completeness",
        partitions_def=hourly_partitions,
        blocking=True,
        description="Every sample's impression is in live_exposures of this hour or the few "
        "hours before it that a sample can come from.",
    )
    def join_completeness(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, hour_ms = partition_hour(context)
        lake = storage.store()
        ids = read_partition(lake, asset, key, columns=["exposure_id"]).column(0).to_pandas()
        known = read_window(
            lake, LIVE_EXPOSURES, window_keys(hour_ms, LOOKBACK_HOURS), columns=["exposure_id"],
            schema=EXPOSURE_SCHEMA,
        ).column(0).to_pandas()  # fmt: skip
        frame = pd.DataFrame({"joined": ids.isin(set(known))})
        outcome = quality.validate(
            frame,
            [
                quality.Expect(
                    "ExpectColumnValuesToBeInSet", {"column": "joined", "value_set": [True]}
                )
            ],
            f"{asset}_join",
        )
        return check_result(outcome, samples=len(ids), unjoined=int((~frame.joined).sum()))

    return [mask_invariants, label_leakage, join_completeness]


@lake_check(
    asset=FAST_SAMPLES,
    name="label_rates",
    partitions_def=hourly_partitions,
    blocking=True,
    description="Per-task positive rate of the fast stream inside its band, and within the "
    f"allowed drift of the previous {DRIFT_HOURS} hours (LIVECROSS_MAX_LABEL_DRIFT).",
)
def fast_label_rates(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    rates = QL.rate_frame(read_partition(lake, FAST_SAMPLES, key))
    band = quality.validate(
        QL.wide_rates(rates),
        QL.rate_band_expectations(rates) or [quality.rate_expectation("rate_click", 1.0)],
        "fast_bands",
    )
    previous = []
    for k in window_keys(hour_ms, DRIFT_HOURS)[:-1]:
        man = lake.manifest(partition_dir(LIVE_EXPOSURES, k))
        if man is not None:
            previous.append(man)
    drift, expectations = QL.drift_frame(rates, previous)
    outcomes = [band]
    if expectations:
        outcomes.append(quality.validate(drift, expectations, "fast_drift"))
    return check_result(
        quality.merge(*outcomes),
        rates=md_table(rates.to_dict("records")),
        previous_hours=[partition_key(hour_ms - (i + 1) * HOUR_MS) for i in range(len(previous))],
    )


@lake_check(
    asset=LIVE_EXPOSURES,
    name="feature_leakage",
    partitions_def=hourly_partitions,
    blocking=True,
    description=f"{FEATURE_SAMPLE} random impressions have their features recomputed from only "
    "the events reported before the impression was shown: identical to the published ones.",
)
def feature_leakage(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    keys = window_keys(hour_ms, LOOKBACK_HOURS)
    exposures = read_partition(lake, LIVE_EXPOSURES, key)
    frame = QL.feature_recompute_frame(
        exposures,
        read_window(lake, RAW_LIVE, keys),
        read_window(lake, RAW_SV, keys, columns=SV_COLUMNS),
        FEATURE_SAMPLE,
        seed=hour_ms // HOUR_MS,
        activity=activity_before(lake, hour_ms),
    )
    outcome = quality.validate(
        frame, [quality.rate_expectation("features_differing", 0, 0)], "feature_leakage"
    )
    return check_result(outcome, exposures_recomputed=len(frame))


moment_checks = [
    activity_accumulates,
    *[c for name, stream in STREAMS.items() for c in build_stream_checks(name, stream)],
    fast_label_rates,
    feature_leakage,
]
