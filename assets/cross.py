"""The Cross side, hourly: the cross-domain user history store and the GSU sequences of
every live exposure (thin wrappers over ml.cross)."""

import time

import dagster as dg

from assets.lake import (
    CATALOG,
    EXPOSURE_SEQUENCES,
    IN_ORDER_HINT,
    LIVE_EXPOSURES,
    RAW_LIVE,
    RAW_SV,
    USER_HISTORY,
    read_partition,
    read_window,
    require_published,
)
from assets.metadata import DATA_OWNERS, asset_tags, counts_table, md_table, speed, table_metadata
from assets.partitions import PREVIOUS_HOUR, hourly_partitions, partition_hour, previous_key
from ml.cross.catalog_view import CatalogView, read_catalog
from ml.cross.cross_hour import (
    HistoryTotals,
    PreviousHistory,
    SequenceFill,
    action_counts,
    history_hour,
    hour_interactions,
    previous_shard_loader,
    sequence_hour,
)
from ml.cross.gsu import DEFAULT_LEN, EXPOSURE_COLUMNS, sequence_schema
from ml.cross.history import (
    DEFAULT_CAP,
    DEFAULT_SHARDS,
    HISTORY_SCHEMA,
    RAW_COLUMNS,
    Columns,
    publish_streaming,
    shard_name,
    to_table,
)
from ml.io.lake import partition_dir
from ml.io.store import Store, parquet_bytes
from ml.moment.features import EXPOSURE_SCHEMA
from ml.schema import GSUS
from resources.storage import LakeStorage


class HistoryConfig(dg.Config):
    n_shards: int = DEFAULT_SHARDS
    max_interactions: int = DEFAULT_CAP  # per user
    threads: int = 2  # shards processed at once (memory: this many shards)


class SequenceConfig(dg.Config):
    seq_len: int = DEFAULT_LEN
    threads: int = 2


def load_catalog(lake: Store, key: str) -> CatalogView:
    """content_catalog[H]: the catalog as of the end of hour ``key``."""
    require_published(lake, CATALOG, key, "materialize it first (the hourly job does)")
    return read_catalog(lake, partition_dir(CATALOG, key))


def previous_history(lake: Store, hour_ms: int) -> PreviousHistory | None:
    """history[H-1] as published; None for the first partition (empty history)."""
    prev = previous_key(hour_ms)
    if prev is None:
        return None
    man = require_published(
        lake, USER_HISTORY, prev, f"history[H] extends history[H-1]; {IN_ORDER_HINT}"
    )
    return PreviousHistory(partition_dir(USER_HISTORY, prev), man)


def raw_interactions(lake: Store, key: str, catalog: CatalogView) -> Columns:
    """The interactions of both domains reported in raw hour ``key``."""
    live = read_window(lake, RAW_LIVE, [key], columns=RAW_COLUMNS)
    sv = read_window(lake, RAW_SV, [key], columns=RAW_COLUMNS)
    return hour_interactions(live, sv, catalog)


def _check_config(n_shards: int, cap: int, threads: int) -> None:
    if not 1 <= n_shards <= 1000 or cap < 1 or threads < 1:
        raise dg.Failure(
            f"invalid config: n_shards={n_shards} (1..1000), cap={cap} (>= 1), threads={threads}"
        )


@dg.asset(
    name=USER_HISTORY,
    group_name="cross",
    kinds={"parquet"},
    owners=DATA_OWNERS,
    tags=asset_tags("cross", "sequence"),
    partitions_def=hourly_partitions,
    deps=[CATALOG, RAW_LIVE, RAW_SV, dg.AssetDep(USER_HISTORY, partition_mapping=PREVIOUS_HOUR)],
    description="Each user's newest 10,000 interactions across short videos and live rooms "
    "(plays, likes, comments, follows, shares; room enters, exits, gifts) as of the end of the "
    "hour: the previous hour's history plus the interactions reported in this hour, sorted by "
    "user and report time, split into shards by user.",
)
def user_history(context: dg.AssetExecutionContext, config: HistoryConfig, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    _check_config(config.n_shards, config.max_interactions, config.threads)
    t = time.perf_counter()
    lake = storage.store()
    catalog = load_catalog(lake, key)
    prev = previous_history(lake, hour_ms)
    new = raw_interactions(lake, key, catalog)
    manifest = {
        "partition": key,
        "previous": None if prev is None else prev.manifest["partition"],
        "previous_rows": 0 if prev is None else prev.manifest["rows"],
        "n_shards": config.n_shards,
        "cap": config.max_interactions,
        "catalog": catalog.fingerprint,
        "interactions_added": len(new["user_id"]),
        "interactions_by_action": action_counts(new),
    }

    def shards():
        """Encoded shards one at a time (memory: ``threads`` shards); the totals go into
        the manifest after the last one, before publish_streaming writes it."""
        totals = HistoryTotals()
        load = previous_shard_loader(lake, prev, catalog, config.n_shards)
        for s, merged, stats in history_hour(
            new, load, config.n_shards, config.max_interactions, config.threads
        ):
            totals.add(stats)
            yield shard_name(s), parquet_bytes(to_table(merged))
        manifest.update(totals.manifest())

    written = publish_streaming(lake, partition_dir(USER_HISTORY, key), shards(), manifest)
    seconds = max(time.perf_counter() - t, 1e-9)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(HISTORY_SCHEMA, manifest["rows"]),
            "users": manifest["users"],
            "interactions_added": manifest["interactions_added"],
            "evicted": manifest["evicted"],
            "max_history_len": manifest["max_len"],
            "shards": config.n_shards,
            "bytes_written": written,
            "interactions_by_action": counts_table(manifest["interactions_by_action"], "action"),
            "path": dg.MetadataValue.path(lake.url(partition_dir(USER_HISTORY, key))),
            **speed(rows_per_s=round((manifest["rows"] + 1) / seconds), seconds=round(seconds, 3)),
        }
    )


@dg.asset(
    name=EXPOSURE_SEQUENCES,
    group_name="cross",
    kinds={"parquet"},
    owners=DATA_OWNERS,
    tags=asset_tags("cross", "sequence"),
    partitions_def=hourly_partitions,
    deps=[
        LIVE_EXPOSURES,
        CATALOG,
        RAW_LIVE,
        RAW_SV,
        USER_HISTORY,  # reads user_history[H-1]: implied by user_history[H]
    ],
    description="One row per live impression of the hour with five short sequences drawn "
    "from the user's history before the moment of the impression: the latest short-video "
    "plays, the plays most similar to the room (by content embedding), the room author's own "
    "videos the user watched, the long views, and the latest live sessions. Only what was "
    "reported before the impression is used.",
)
def exposure_sequences(
    context: dg.AssetExecutionContext, config: SequenceConfig, storage: LakeStorage
):
    key, hour_ms = partition_hour(context)
    if config.seq_len < 1 or config.threads < 1:
        raise dg.Failure(f"invalid config: seq_len={config.seq_len}, threads={config.threads}")
    t = time.perf_counter()
    lake = storage.store()
    exposures = read_partition(
        lake, LIVE_EXPOSURES, key, columns=EXPOSURE_COLUMNS, schema=EXPOSURE_SCHEMA
    ).combine_chunks()
    catalog = load_catalog(lake, key)
    prev = previous_history(lake, hour_ms)
    n_shards = prev.n_shards if prev else DEFAULT_SHARDS
    cap = prev.cap if prev else DEFAULT_CAP
    new = raw_interactions(lake, key, catalog)
    manifest: dict = {
        "partition": key,
        "history": None if prev is None else prev.manifest["partition"],
        "n_shards": n_shards,
        "cap": cap,
        "seq_len": config.seq_len,
        "catalog": catalog.fingerprint,
        "exposures": exposures.num_rows,
    }

    def parts():
        fill = SequenceFill()
        load = previous_shard_loader(lake, prev, catalog, n_shards)
        for res in sequence_hour(
            exposures, new, catalog, load, n_shards, config.seq_len, cap, config.threads
        ):
            fill.add(res)
            yield f"part-{res.shard:05d}.parquet", parquet_bytes(res.table)
        manifest.update(fill.manifest())

    written = publish_streaming(lake, partition_dir(EXPOSURE_SEQUENCES, key), parts(), manifest)
    seconds = max(time.perf_counter() - t, 1e-9)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(sequence_schema(config.seq_len), exposures.num_rows),
            "seq_len": config.seq_len,
            "history_partition": manifest["history"] or "-",
            "history_rows_read": manifest["history_rows_read"],
            "gsu_fill": md_table(
                [
                    {
                        "gsu": g,
                        "non_empty": f"{manifest[f'{g}_nonempty']:.3f}",
                        "mean_len": f"{manifest[f'{g}_mean_len']:.1f}",
                    }
                    for g in GSUS
                ]
            ),
            # Share of exposures with a non-empty sequence, one number per GSU (charts).
            **{f"gsu_fill/{g}": float(manifest[f"{g}_nonempty"]) for g in GSUS},
            "bytes_written": written,
            "path": dg.MetadataValue.path(lake.url(partition_dir(EXPOSURE_SEQUENCES, key))),
            **speed(exposures_per_s=round(exposures.num_rows / seconds), seconds=round(seconds, 3)),
        }
    )
