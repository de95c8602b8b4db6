"""Ingestion assets: the catalog and the two hourly raw-event tables (thin wrappers over
ml.ingest)."""

from typing import Literal

import dagster as dg
import pyarrow as pa

from assets.lake import CATALOG, IN_ORDER_HINT, RAW_ASSETS, publish_table, require_published
from assets.metadata import (
    DATA_OWNERS,
    asset_tags,
    column_schema,
    counts_table,
    md_table,
    preview,
    schema_md,
    speed,
    table_metadata,
    time_span,
)
from assets.partitions import PREVIOUS_HOUR, hourly_partitions, partition_hour, previous_key
from ml import schema as S
from ml.hours import HOUR_MS
from ml.ingest.catalog import catalog_changes, catalog_item_ids, ingest_catalog
from ml.ingest.landing_hour import IngestConfig, ingest_hour
from ml.io.lake import partition_dir, quarantine_dir
from ml.io.store import Store, parquet_bytes
from resources.storage import LakeStorage, LandingZone


class RawIngestConfig(dg.Config):
    corrupt_files: Literal["fail", "quarantine"] = "fail"


@dg.asset(
    name=CATALOG,
    group_name="ingestion",
    kinds={"parquet"},
    owners=DATA_OWNERS,
    tags=asset_tags("ingest", "catalog"),
    partitions_def=hourly_partitions,
    # Compared with the hour before: what is new, and what the export lost.
    deps=[dg.AssetDep(CATALOG, partition_mapping=PREVIOUS_HOUR)],
    description="Authors, short videos and live rooms (with content embeddings) as the "
    "platform's catalog stood at the end of the hour: rooms started and videos published "
    "by then, from the latest export in landing/catalog. Raw events of the hour are checked "
    "against it, so an item that appears in an hour is known in that hour. Counts what is "
    "new since the hour before, and what vanished from the export.",
)
def content_catalog(context: dg.AssetExecutionContext, storage: LakeStorage, landing: LandingZone):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    result = ingest_catalog(landing.store(), as_of_ms=hour_ms + HOUR_MS)
    if not result.conserved():
        raise RuntimeError(f"catalog rows not conserved: {result.manifest()}")
    man = {
        "partition": key,
        **result.manifest(),
        **catalog_changes(lake, _previous_dir(hour_ms), result.tables),
    }
    if any(man["vanished"].values()):
        context.log.warning(
            f"rows of {CATALOG} {previous_key(hour_ms)} not in this export: {man['vanished']}"
        )
    files = {f"{name}.parquet": parquet_bytes(t) for name, t in result.tables.items()}
    written = lake.publish(partition_dir(CATALOG, key), files, man)
    lake.publish(
        quarantine_dir(CATALOG, key),
        {"part-00000.parquet": parquet_bytes(result.quarantine)},
        man,
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(man["rows"].values()),
            # The rooms table's columns; the other two tables' below as Markdown.
            "dagster/column_schema": column_schema(result.tables["rooms"].schema),
            "schema/short_videos": schema_md(result.tables["short_videos"].schema),
            "schema/authors": schema_md(result.tables["authors"].schema),
            "authors": man["rows"]["authors"],
            "short_videos": man["rows"]["short_videos"],
            "rooms": man["rows"]["rooms"],
            "not_yet_in_catalog": sum(man["not_yet"].values()),
            "new/rooms": man["new"]["rooms"],
            "new/short_videos": man["new"]["short_videos"],
            "vanished_since_previous_hour": sum(man["vanished"].values()),
            "quarantined": man["quarantined"],
            "quarantine_reasons": counts_table(man["reasons"], "reason"),
            "bytes_written": written,
            "path": dg.MetadataValue.path(lake.url(partition_dir(CATALOG, key))),
        }
    )


def _previous_dir(hour_ms: int) -> str | None:
    prev = previous_key(hour_ms)
    return None if prev is None else partition_dir(CATALOG, prev)


def read_catalog_items(lake: Store, domain: str, key: str) -> pa.Array:
    """Item ids the domain's events of hour ``key`` may refer to: content_catalog[key]."""
    require_published(lake, CATALOG, key, "the hourly job materializes it before raw events")
    return catalog_item_ids(lake, partition_dir(CATALOG, key), domain)


def read_prior_event_ids(lake: Store, asset_name: str, hour_ms: int) -> pa.Array | None:
    """Event ids of the previous partition, for cross-hour dedup; None for the first hour."""
    prev = previous_key(hour_ms)
    if prev is None:
        return None
    require_published(
        lake, asset_name, prev,
        f"it is needed to drop re-deliveries that cross the hour boundary; {IN_ORDER_HINT}",
    )  # fmt: skip
    rel = partition_dir(asset_name, prev)
    return lake.read_published(rel, columns=["event_id"]).column("event_id").combine_chunks()


_DOMAIN_WORDS = {S.LIVE: "Live-room", S.SHORT_VIDEO: "Short-video"}


def build_raw_events_asset(domain: str) -> dg.AssetsDefinition:
    name = RAW_ASSETS[domain]

    @dg.asset(
        name=name,
        group_name="ingestion",
        kinds={"parquet"},
        owners=DATA_OWNERS,
        tags=asset_tags("ingest", "raw"),
        partitions_def=hourly_partitions,
        deps=[CATALOG, dg.AssetDep(name, partition_mapping=PREVIOUS_HOUR)],
        description=(
            f"{_DOMAIN_WORDS[domain]} events ({', '.join(S.EVENT_TYPES[domain])}) the app "
            "reported during the hour, one row per event: parsed, typed and checked against "
            "the catalog; a repeat of an event already seen (this hour or the one before) is "
            "dropped, and each bad line is set aside in the quarantine table with its reason."
        ),
    )
    def _raw_events(
        context: dg.AssetExecutionContext,
        config: RawIngestConfig,
        storage: LakeStorage,
        landing: LandingZone,
    ) -> dg.MaterializeResult:
        key, hour_ms = partition_hour(context)
        lake = storage.store()
        res = ingest_hour(
            landing.store(),
            domain,
            hour_ms,
            known_items=read_catalog_items(lake, domain, key),
            prior_event_ids=read_prior_event_ids(lake, name, hour_ms),
            config=IngestConfig(corrupt_files=config.corrupt_files),
        )
        if not res.conserved():  # a bug, never a data problem: refuse to publish
            raise RuntimeError(f"{name} {key}: lines not conserved: {res.manifest()}")
        manifest = res.manifest()
        written = publish_table(lake, name, key, res.clean, manifest, quarantine=res.quarantine)
        if res.unlisted_files:
            context.log.warning(
                f"landing files the sink's manifest does not list, not read: {res.unlisted_files}"
            )
        if res.lines_lost:
            context.log.warning(
                f"{res.lines_lost} listed lines lost in {res.n_damaged_files} damaged file(s) "
                "(salvage mode): see the quarantine's file rows"
            )
        n_in = max(res.lines_in, 1)
        return dg.MaterializeResult(
            metadata={
                **table_metadata(res.clean.schema, res.clean.num_rows),
                "lines_in": res.lines_in,
                "duplicates": res.n_duplicates,
                "quarantined": res.n_quarantined,
                "lines_lost": res.lines_lost,
                "damaged_files": res.n_damaged_files,
                "unlisted_files": len(res.unlisted_files),
                "quarantine_rate": (res.n_quarantined + res.lines_lost) / n_in,
                "duplicate_rate": res.n_duplicates / n_in,
                "event_types": counts_table(
                    manifest["event_types"], "event_type", res.clean.num_rows
                ),
                "quarantine_reasons": counts_table(res.reason_counts, "reason", n_in),
                "source_files": md_table(res.files),
                "bytes_in": sum(f["bytes"] for f in res.files),
                "bytes_written": written,
                "event_time_span": time_span(res.clean, "event_time_ms"),
                "report_time_span": time_span(res.clean, "report_time_ms"),
                "preview": preview(res.clean),
                "quarantine_preview": preview(res.quarantine),
                "path": dg.MetadataValue.path(lake.url(partition_dir(name, key))),
                **speed(
                    events_per_s=round(res.lines_in / max(res.seconds, 1e-9)),
                    seconds=round(res.seconds, 3),
                ),
            }
        )

    return _raw_events


raw_live_events = build_raw_events_asset(S.LIVE)
raw_short_video_events = build_raw_events_asset(S.SHORT_VIDEO)
