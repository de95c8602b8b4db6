"""Asset checks of the Moment side: GX suites (ml.quality_labels) inside Dagster checks.

Blocking: mask invariants, label leakage (positives proven by raw events reported by the
label cutoff; features recomputed from the past only), sample/exposure join
completeness, label-rate bands and hour-over-hour drift of the fast stream, segment CTR.
"""

import dagster as dg
import pandas as pd

from assets.activity import activity_before
from assets.checks import check_result
from assets.labels import LOOKBACK_HOURS, RAW_LIVE, RAW_SV, STREAMS, read_window, window_keys
from assets.metadata import md_table
from assets.partitions import hourly_partitions, partition_hour
from ml import quality
from ml import quality_labels as QL
from ml.data.features import SV_COLUMNS
from ml.hours import HOUR_MS, partition_key
from ml.io.lake import partition_dir
from resources.storage import LakeStorage

DRIFT_HOURS = 3
FEATURE_SAMPLE = 50


def _merge(*outcomes: quality.SuiteOutcome) -> quality.SuiteOutcome:
    return quality.SuiteOutcome(
        all(o.success for o in outcomes), [r for o in outcomes for r in o.results]
    )


def build_stream_checks(asset: str, stream: str) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset=asset,
        name="mask_invariants",
        partitions_def=hourly_partitions,
        blocking=True,
        description="Every sample labels >= 1 task, no label outside its mask, cutoff <= emission; "
        "fast labels all tasks, slow only missing positives, moment first-only.",
    )
    def mask_invariants(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, _ = partition_hour(context)
        samples = storage.store().read_published(partition_dir(asset, key))
        outcome = quality.validate(
            QL.mask_frame(samples), QL.mask_expectations(stream), f"{asset}_masks"
        )
        if stream == "moment":
            kinds = QL.moment_kind_frame(samples)
            outcome = _merge(
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

    @dg.asset_check(
        asset=asset,
        name="label_leakage",
        partitions_def=hourly_partitions,
        blocking=True,
        description="Each positive label is proven by a raw event of the same user and room "
        "reported no later than the sample's label cutoff; samples emitted inside the hour.",
    )
    def label_leakage(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, hour_ms = partition_hour(context)
        lake = storage.store()
        samples = lake.read_published(partition_dir(asset, key))
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

    @dg.asset_check(
        asset=asset,
        name="join_completeness",
        partitions_def=hourly_partitions,
        blocking=True,
        description="Every sample's exposure is in live_exposures of the look-back window.",
    )
    def join_completeness(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, hour_ms = partition_hour(context)
        lake = storage.store()
        ids = (
            lake.read_published(partition_dir(asset, key), columns=["exposure_id"])
            .column(0)
            .to_pandas()
        )
        known = pd.concat(
            [
                lake.read_published(partition_dir("live_exposures", k), columns=["exposure_id"])
                .column(0)
                .to_pandas()
                for k in window_keys(hour_ms, LOOKBACK_HOURS)
            ]
        )
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


@dg.asset_check(
    asset="fast_samples",
    name="label_rates",
    partitions_def=hourly_partitions,
    blocking=True,
    description="Per-task positive rate of the fast stream inside its band, and within the "
    f"allowed drift of the previous {DRIFT_HOURS} hours (LIVECROSS_MAX_LABEL_DRIFT).",
)
def fast_label_rates(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    rates = QL.rate_frame(lake.read_published(partition_dir("fast_samples", key)))
    band = quality.validate(
        QL.wide_rates(rates),
        QL.rate_band_expectations(rates) or [quality.rate_expectation("rate_click", 1.0)],
        "fast_bands",
    )
    previous = []
    for k in window_keys(hour_ms, DRIFT_HOURS)[:-1]:
        man = lake.manifest(partition_dir("live_exposures", k))
        if man is not None:
            previous.append(man)
    drift, expectations = QL.drift_frame(rates, previous)
    outcomes = [band]
    if expectations:
        outcomes.append(quality.validate(drift, expectations, "fast_drift"))
    return check_result(
        _merge(*outcomes),
        rates=md_table(rates.to_dict("records")),
        previous_hours=[partition_key(hour_ms - (i + 1) * HOUR_MS) for i in range(len(previous))],
    )


@dg.asset_check(
    asset="live_exposures",
    name="feature_leakage",
    partitions_def=hourly_partitions,
    blocking=True,
    description=f"{FEATURE_SAMPLE} random exposures recomputed from events reported strictly before t0: identical features.",
)
def feature_leakage(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    keys = window_keys(hour_ms, LOOKBACK_HOURS)
    exposures = lake.read_published(partition_dir("live_exposures", key))
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


@dg.asset_check(
    asset="live_segments",
    name="segment_ctr",
    partitions_def=hourly_partitions,
    blocking=True,
    description="Segment CTR in [0, 1], enters <= shows, and enough segments have shows.",
)
def segment_ctr(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, _ = partition_hour(context)
    seg = (
        storage.store()
        .read_published(partition_dir("live_segments", key), columns=["shows", "enters", "ctr"])
        .to_pandas()
    )
    seg["shown_share"] = float((seg.shows > 0).mean()) if len(seg) else 0.0
    outcome = quality.validate(seg, QL.segment_expectations(), "segment_ctr")
    return check_result(
        outcome, segments=len(seg), shown_share=float(seg.shown_share.iloc[0]) if len(seg) else 0.0
    )


label_checks = [
    *[c for name, stream in STREAMS.items() for c in build_stream_checks(name, stream)],
    fast_label_rates,
    feature_leakage,
    segment_ctr,
]
