"""Asset checks for ingestion: Great Expectations suites run inside Dagster checks.

Blocking checks (schema/ranges, quarantine rate, conservation) stop downstream assets of
the same run when they fail; the duplicate-rate band only warns.
"""

import dagster as dg
import pandas as pd

from assets.ingestion import CATALOG, RAW_ASSETS
from assets.metadata import md_table
from assets.partitions import hourly_partitions, partition_hour
from ml import quality
from ml.data.jsonl import count_lines
from ml.data.landing import list_event_files, read_event_files
from ml.io.lake import partition_dir, quarantine_dir
from ml.io.store import Store
from resources.storage import LakeStorage, LandingZone


def published_manifest(lake: Store, rel: str, what: str) -> dict:
    man = lake.manifest(rel)
    if man is None:
        raise dg.Failure(f"{what} is not materialized ({lake.url(rel)})")
    return man


def check_result(outcome: quality.SuiteOutcome, **extra) -> dg.AssetCheckResult:
    meta = {"expectations": dg.MetadataValue.md(outcome.markdown()), **extra}
    failed = outcome.failures()
    if failed:
        meta["failed"] = md_table(failed)
    return dg.AssetCheckResult(passed=outcome.success, metadata=meta)


def build_raw_event_checks(domain: str) -> list[dg.AssetChecksDefinition]:
    name = RAW_ASSETS[domain]

    @dg.asset_check(
        asset=name,
        name="schema_and_ranges",
        partitions_def=hourly_partitions,
        blocking=True,
        description="GX suite: columns, types, enums, non-null ids, unique event_id, time and value ranges.",
    )
    def schema_and_ranges(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, hour_ms = partition_hour(context)
        lake = storage.store()
        table = lake.read_published(partition_dir(name, key))
        outcome = quality.validate(
            table.to_pandas(), quality.raw_events_suite(domain, hour_ms), f"{name}_schema"
        )
        return check_result(outcome, rows=table.num_rows)

    @dg.asset_check(
        asset=name,
        name="quarantine_rate",
        partitions_def=hourly_partitions,
        blocking=True,
        description=f"Quarantined lines / lines in <= {quality.MAX_QUARANTINE_RATE:.0%} (LIVECROSS_MAX_QUARANTINE_RATE).",
    )
    def quarantine_rate(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, _ = partition_hour(context)
        man = published_manifest(storage.store(), partition_dir(name, key), f"{name} {key}")
        rate = man["quarantined"] / max(man["lines_in"], 1)
        outcome = quality.validate(
            pd.DataFrame({"quarantine_rate": [rate]}),
            [quality.rate_expectation("quarantine_rate", quality.MAX_QUARANTINE_RATE)],
            f"{name}_quarantine_rate",
        )
        return check_result(
            outcome, quarantine_rate=rate, quarantined=man["quarantined"], lines_in=man["lines_in"]
        )

    @dg.asset_check(
        asset=name,
        name="duplicate_rate",
        partitions_def=hourly_partitions,
        blocking=False,
        description="Duplicate deliveries / lines in within the expected band (warns).",
    )
    def duplicate_rate(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
        key, _ = partition_hour(context)
        man = published_manifest(storage.store(), partition_dir(name, key), f"{name} {key}")
        rate = man["duplicates"] / max(man["lines_in"], 1)
        lo, hi = quality.DUPLICATE_RATE_BAND
        outcome = quality.validate(
            pd.DataFrame({"duplicate_rate": [rate]}),
            [quality.rate_expectation("duplicate_rate", hi, lo)],
            f"{name}_duplicate_rate",
        )
        res = check_result(outcome, duplicate_rate=rate, duplicates=man["duplicates"])
        return dg.AssetCheckResult(
            passed=res.passed, metadata=res.metadata, severity=dg.AssetCheckSeverity.WARN
        )

    @dg.asset_check(
        asset=name,
        name="conservation",
        partitions_def=hourly_partitions,
        blocking=True,
        description="Every landing line is exactly one of clean, duplicate, quarantined (recounted from landing and lake).",
    )
    def conservation(
        context: dg.AssetCheckExecutionContext, storage: LakeStorage, landing: LandingZone
    ):
        key, hour_ms = partition_hour(context)
        lake = storage.store()
        clean = lake.read_published(partition_dir(name, key), columns=["event_id"]).num_rows
        quarantined = lake.read_published(quarantine_dir(name, key), columns=["reason"]).num_rows
        paths, _ = list_event_files(landing.store(), domain, hour_ms)
        loaded = read_event_files(landing.store(), paths, salvage_corrupt=True)
        lines_in = sum(count_lines(f.data) + (err is not None) for f, err in loaded)
        unbalanced = lines_in - clean - quarantined
        outcome = quality.validate(
            pd.DataFrame({"unbalanced_lines": [unbalanced]}),
            [quality.rate_expectation("unbalanced_lines", 0, 0)],
            f"{name}_conservation",
        )
        return check_result(
            outcome, landing_lines=lines_in, clean=clean, duplicates_and_quarantined=quarantined
        )

    return [schema_and_ranges, quarantine_rate, duplicate_rate, conservation]


@dg.asset_check(
    asset=CATALOG,
    name="catalog_keys_and_conservation",
    blocking=True,
    description="GX: unique non-null ids per catalog table; rows in = clean + quarantined.",
)
def catalog_keys_and_conservation(storage: LakeStorage):
    lake = storage.store()
    man = published_manifest(lake, partition_dir(CATALOG), CATALOG)
    frames = {}
    expectations = []
    for table, key in (("authors", "author_id"), ("short_videos", "item_id"), ("rooms", "item_id")):
        ids = lake.read_parquet(f"{partition_dir(CATALOG)}/{table}.parquet", columns=[key]).column(
            key
        )
        frames[f"{table}_{key}"] = ids.to_pandas()
    quarantined = lake.read_published(quarantine_dir(CATALOG), columns=["reason"]).num_rows
    unbalanced = sum(man["rows_in"].values()) - sum(man["rows"].values()) - quarantined
    outcomes = []
    for col, series in frames.items():
        expectations = [
            quality.Expect("ExpectColumnValuesToBeUnique", {"column": col}),
            quality.Expect("ExpectColumnValuesToNotBeNull", {"column": col}),
        ]
        outcomes.append(quality.validate(series.to_frame(col), expectations, f"catalog_{col}"))
    outcomes.append(
        quality.validate(
            pd.DataFrame({"unbalanced_rows": [unbalanced]}),
            [quality.rate_expectation("unbalanced_rows", 0, 0)],
            "catalog_conservation",
        )
    )
    merged = quality.SuiteOutcome(
        all(o.success for o in outcomes), [r for o in outcomes for r in o.results]
    )
    return check_result(merged, rows=dg.MetadataValue.json(man["rows"]), quarantined=quarantined)


raw_event_checks = [c for d in RAW_ASSETS for c in build_raw_event_checks(d)]
all_checks = [*raw_event_checks, catalog_keys_and_conservation]
