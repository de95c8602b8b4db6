"""Asset checks of ingestion: Great Expectations suites run inside Dagster checks.

Blocking checks (schema/ranges, quarantine rate, conservation) stop downstream assets of
the same run when they fail; the duplicate-rate band only warns.
"""

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from assets.gates import lake_check
from assets.lake import CATALOG, RAW_ASSETS, read_partition, require_published
from assets.metadata import check_result
from assets.partitions import hourly_partitions, partition_hour
from ml import quality
from ml import schema as S
from ml.ingest.catalog import catalog_id_columns
from ml.ingest.landing_hour import recount_landing_lines
from ml.io.lake import partition_dir, quarantine_dir
from ml.quality.ingest import raw_events_suite
from resources.storage import LakeStorage, LandingZone


def _one_figure(name: str, value: float, max_value: float, min_value: float, suite: str):
    """A one-row frame of one figure validated against its band."""
    return quality.validate(
        pd.DataFrame({name: [value]}),
        [quality.rate_expectation(name, max_value, min_value)],
        suite,
    )


def build_raw_event_checks(domain: str) -> list[dg.AssetChecksDefinition]:
    name = RAW_ASSETS[domain]

    @lake_check(
        asset=name,
        name="schema_and_ranges",
        partitions_def=hourly_partitions,
        blocking=True,
        description="Great Expectations suite on the published table: the expected columns "
        "and types, known event types and pages, no missing ids, each event_id once, times "
        "inside the hour and values in range.",
    )
    def schema_and_ranges(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, hour_ms = partition_hour(context)
        table = read_partition(storage.store(), name, key)
        outcome = quality.validate(
            table.to_pandas(), raw_events_suite(domain, hour_ms), f"{name}_schema"
        )
        return check_result(outcome, rows=table.num_rows)

    @lake_check(
        asset=name,
        name="quarantine_rate",
        partitions_def=hourly_partitions,
        blocking=True,
        description="Share of the hour's lines set aside as bad (quarantined or lost) at most "
        f"{quality.MAX_QUARANTINE_RATE:.0%} (set by LIVECROSS_MAX_QUARANTINE_RATE).",
    )
    def quarantine_rate(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, _ = partition_hour(context)
        man = require_published(storage.store(), name, key)
        bad = man["quarantined"] + man["lost"]  # lost lines (salvage mode) are bad lines too
        rate = bad / max(man["lines_in"], 1)
        outcome = _one_figure(
            "quarantine_rate", rate, quality.MAX_QUARANTINE_RATE, 0.0, f"{name}_quarantine_rate"
        )
        return check_result(
            outcome,
            quarantine_rate=rate,
            quarantined=man["quarantined"],
            lines_lost=man["lost"],
            lines_in=man["lines_in"],
        )

    @lake_check(
        asset=name,
        name="duplicate_rate",
        partitions_def=hourly_partitions,
        blocking=False,
        description="Share of the hour's lines that were repeat deliveries of an event, "
        "inside the expected band (only warns).",
    )
    def duplicate_rate(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, _ = partition_hour(context)
        man = require_published(storage.store(), name, key)
        rate = man["duplicates"] / max(man["lines_in"], 1)
        lo, hi = quality.DUPLICATE_RATE_BAND
        outcome = _one_figure("duplicate_rate", rate, hi, lo, f"{name}_duplicate_rate")
        res = check_result(outcome, duplicate_rate=rate, duplicates=man["duplicates"])
        return dg.AssetCheckResult(
            passed=res.passed, metadata=res.metadata, severity=dg.AssetCheckSeverity.WARN
        )

    @lake_check(
        asset=name,
        name="conservation",
        partitions_def=hourly_partitions,
        blocking=True,
        description="Every line the sink's manifest lists is accounted for exactly once: "
        "kept, dropped as a repeat, quarantined, or counted lost (recounted from the landing "
        "files and the lake).",
    )
    def conservation(
        context: dg.AssetCheckExecutionContext, storage: LakeStorage, landing: LandingZone
    ):
        key, hour_ms = partition_hour(context)
        lake = storage.store()
        clean = read_partition(lake, name, key, columns=["event_id"]).num_rows
        reasons = lake.read_published(quarantine_dir(name, key), columns=["reason"])
        file_rows = pc.sum(pc.is_in(reasons.column("reason"), pa.array(S.FILE_REASONS))).as_py()
        quarantined = reasons.num_rows - (file_rows or 0)  # file rows are files, not lines
        recount = recount_landing_lines(landing.store(), domain, hour_ms)
        recorded_lost = require_published(lake, name, key)["lost"]
        # Both must hold: the lines balance, and the loss recorded is the loss recounted.
        unbalanced = abs(recount.listed - clean - quarantined - recount.lost) + abs(
            recorded_lost - recount.lost
        )
        outcome = _one_figure("unbalanced_lines", unbalanced, 0, 0, f"{name}_conservation")
        return check_result(
            outcome,
            landing_lines=recount.listed,
            clean=clean,
            duplicates_and_quarantined=quarantined,
            lines_lost=recount.lost,
            lines_lost_recorded=recorded_lost,
        )

    return [schema_and_ranges, quarantine_rate, duplicate_rate, conservation]


@lake_check(
    asset=CATALOG,
    name="catalog_keys_and_conservation",
    partitions_def=hourly_partitions,
    blocking=True,
    description="Unique non-null ids in every catalog table; rows exported = rows kept + "
    "quarantined + not yet existing at the end of the hour.",
)
def catalog_keys_and_conservation(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, _ = partition_hour(context)
    lake = storage.store()
    man = require_published(lake, CATALOG, key)
    quarantined = lake.read_published(quarantine_dir(CATALOG, key), columns=["reason"]).num_rows
    unbalanced = (
        sum(man["rows_in"].values())
        - sum(man["rows"].values())
        - quarantined
        - sum(man.get("not_yet", {}).values())
    )
    outcomes = [
        quality.validate(
            ids.to_pandas().to_frame(col),
            [
                quality.Expect("ExpectColumnValuesToBeUnique", {"column": col}),
                quality.Expect("ExpectColumnValuesToNotBeNull", {"column": col}),
            ],
            f"catalog_{col}",
        )
        for col, ids in catalog_id_columns(lake, partition_dir(CATALOG, key)).items()
    ]
    outcomes.append(_one_figure("unbalanced_rows", unbalanced, 0, 0, "catalog_conservation"))
    return check_result(
        quality.merge(*outcomes), rows=dg.MetadataValue.json(man["rows"]), quarantined=quarantined
    )


raw_event_checks = [c for d in RAW_ASSETS for c in build_raw_event_checks(d)]
ingestion_checks = [*raw_event_checks, catalog_keys_and_conservation]
