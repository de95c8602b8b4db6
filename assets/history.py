"""The Cross side, hourly: the cross-domain user history store and the GSU sequences of
every live exposure (thin wrappers over ml.data.history / gsu / cross_hour)."""

import time

import dagster as dg
import numpy as np
import pandas as pd

from assets.ingestion import CATALOG, RAW_ASSETS
from assets.labels import read_window
from assets.metadata import md_table
from assets.partitions import PREVIOUS_HOUR, hourly_partitions, partition_hour, previous_key
from ml import schema as S
from ml.data.cross_hour import history_hour, sequence_hour
from ml.data.gsu import DEFAULT_LEN, EXPOSURE_COLUMNS, GSUS
from ml.data.history import (
    ACTION_NAMES,
    DEFAULT_CAP,
    DEFAULT_SHARDS,
    RAW_COLUMNS,
    Catalog,
    Columns,
    empty_columns,
    interactions,
    publish_streaming,
    read_catalog,
    read_shard_for,
    resolve_catalog,
    shard_name,
    shard_of,
    take,
    to_columns,
    to_table,
)
from ml.io.lake import partition_dir
from ml.io.store import Store, parquet_bytes
from resources.storage import LakeStorage

HISTORY = "user_history"
SEQUENCES = "exposure_sequences"
RAW_LIVE, RAW_SV = RAW_ASSETS[S.LIVE], RAW_ASSETS[S.SHORT_VIDEO]


class HistoryConfig(dg.Config):
    n_shards: int = DEFAULT_SHARDS
    max_interactions: int = DEFAULT_CAP  # per user
    threads: int = 2  # shards processed at once (memory: this many shards)


class SequenceConfig(dg.Config):
    seq_len: int = DEFAULT_LEN
    threads: int = 2


def load_catalog(lake: Store) -> Catalog:
    rel = partition_dir(CATALOG)
    if lake.manifest(rel) is None:
        raise dg.Failure(f"{CATALOG} is not materialized at {lake.url(rel)}: materialize it first")
    return read_catalog(lake, rel)


def previous_history(lake: Store, hour_ms: int) -> tuple[str, dict] | None:
    """(dir, manifest) of history[H-1]; None for the first partition (empty history)."""
    prev = previous_key(hour_ms)
    if prev is None:
        return None
    rel = partition_dir(HISTORY, prev)
    man = lake.manifest(rel)
    if man is None:
        raise dg.Failure(
            f"{HISTORY} {prev} is not materialized ({lake.url(rel)}): history[H] extends "
            "history[H-1]. Materialize the hours in order (a backfill over the range does)."
        )
    return rel, man


def old_loader(lake: Store, prev: tuple[str, dict] | None, catalog: Catalog, n_shards: int):
    """load_old(s): rows of shard s (of n_shards) of history[H-1], with catalog references
    re-resolved when the catalog changed since it was written."""

    def load(s: int) -> Columns:
        if prev is None:
            return empty_columns()
        rel, man = prev
        cols = read_shard_for(lake, rel, man, s, n_shards)
        if man.get("catalog") != catalog.fingerprint:
            cols = resolve_catalog(cols, catalog)
        return cols

    return load


def hour_interactions(lake: Store, key: str, catalog: Catalog) -> Columns:
    live = read_window(lake, RAW_LIVE, [key], columns=RAW_COLUMNS)
    sv = read_window(lake, RAW_SV, [key], columns=RAW_COLUMNS)
    return to_columns(interactions(live, sv, catalog))


def _check_config(n_shards: int, cap: int, threads: int) -> None:
    if not 1 <= n_shards <= 1000 or cap < 1 or threads < 1:
        raise dg.Failure(
            f"invalid config: n_shards={n_shards} (1..1000), cap={cap} (>= 1), threads={threads}"
        )


@dg.asset(
    name=HISTORY,
    group_name="cross",
    kinds={"parquet"},
    partitions_def=hourly_partitions,
    deps=[
        CATALOG,
        RAW_LIVE,
        RAW_SV,
        dg.AssetDep(HISTORY, partition_mapping=PREVIOUS_HOUR),
    ],
    description="Per user the newest 10,000 interactions across short video and live (plays, "
    "likes, comments, follows, shares, live enters/exits/gifts): history[H-1] + the interactions "
    "reported in H, sorted by (user, report time), sharded by a stable hash of user_id.",
)
def user_history(context: dg.AssetExecutionContext, config: HistoryConfig, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    _check_config(config.n_shards, config.max_interactions, config.threads)
    t = time.perf_counter()
    lake = storage.store()
    catalog = load_catalog(lake)
    prev = previous_history(lake, hour_ms)
    new = hour_interactions(lake, key, catalog)
    actions = np.bincount(new["action"].astype(np.int64), minlength=32)
    manifest = {
        "partition": key,
        "previous": None if prev is None else prev[1]["partition"],
        "previous_rows": 0 if prev is None else prev[1]["rows"],
        "n_shards": config.n_shards,
        "cap": config.max_interactions,
        "catalog": catalog.fingerprint,
        "interactions_added": len(new["user_id"]),
        "interactions_by_action": {ACTION_NAMES[c]: int(actions[c]) for c in ACTION_NAMES},
    }

    def shards():
        """Encoded shards one at a time (memory: ``threads`` shards); the totals go into
        the manifest after the last one, before publish_streaming writes it."""
        rows, users, evicted, max_len = [], [], 0, 0
        load = old_loader(lake, prev, catalog, config.n_shards)
        for s, merged, stats in history_hour(
            new, load, config.n_shards, config.max_interactions, config.threads
        ):
            rows.append(stats.rows)
            users.append(stats.users)
            evicted += stats.evicted
            max_len = max(max_len, stats.max_len)
            yield shard_name(s), parquet_bytes(to_table(merged))
        manifest.update(
            rows=sum(rows),
            users=sum(users),
            rows_per_shard=rows,
            users_per_shard=users,
            evicted=evicted,
            max_len=max_len,
        )

    written = publish_streaming(lake, partition_dir(HISTORY, key), shards(), manifest)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": manifest["rows"],
            "users": manifest["users"],
            "interactions_added": manifest["interactions_added"],
            "evicted": manifest["evicted"],
            "max_history_len": manifest["max_len"],
            "shards": config.n_shards,
            "bytes_written": written,
            "interactions_by_action": md_table(
                [{"action": k, "rows": v} for k, v in manifest["interactions_by_action"].items()]
            ),
            "rows_per_s": round((manifest["rows"] + 1) / max(time.perf_counter() - t, 1e-9)),
            "path": dg.MetadataValue.path(lake.url(partition_dir(HISTORY, key))),
        }
    )


@dg.asset(
    name=SEQUENCES,
    group_name="cross",
    kinds={"parquet"},
    partitions_def=hourly_partitions,
    deps=[
        "live_exposures",
        CATALOG,
        RAW_LIVE,
        RAW_SV,
        dg.AssetDep(HISTORY, partition_mapping=PREVIOUS_HOUR),
    ],
    description="Per live exposure of H, five GSU sequences (last short-video plays, top-k "
    "plays by embedding dot product with the room, the room author's items, long views, live "
    "sessions) from the user's history strictly before t0 (user_history[H-1] + the hour's own "
    "interactions reported before t0); fixed_size_list columns, one row per exposure.",
)
def exposure_sequences(
    context: dg.AssetExecutionContext, config: SequenceConfig, storage: LakeStorage
):
    key, hour_ms = partition_hour(context)
    if config.seq_len < 1 or config.threads < 1:
        raise dg.Failure(f"invalid config: seq_len={config.seq_len}, threads={config.threads}")
    t = time.perf_counter()
    lake = storage.store()
    rel_ex = partition_dir("live_exposures", key)
    if lake.manifest(rel_ex) is None:
        raise dg.Failure(f"live_exposures {key} is not materialized ({lake.url(rel_ex)})")
    exposures = lake.read_published(rel_ex, columns=EXPOSURE_COLUMNS).combine_chunks()
    catalog = load_catalog(lake)
    prev = previous_history(lake, hour_ms)
    n_shards = prev[1]["n_shards"] if prev else DEFAULT_SHARDS
    cap = prev[1]["cap"] if prev else DEFAULT_CAP
    new = hour_interactions(lake, key, catalog)
    lens: dict[str, list[np.ndarray]] = {g: [] for g in GSUS}
    manifest: dict = {
        "partition": key,
        "history": None if prev is None else prev[1]["partition"],
        "n_shards": n_shards,
        "cap": cap,
        "seq_len": config.seq_len,
        "catalog": catalog.fingerprint,
        "exposures": exposures.num_rows,
    }

    def parts():
        history_rows = 0
        for res in sequence_hour(
            exposures,
            new,
            catalog,
            old_loader(lake, prev, catalog, n_shards),
            n_shards,
            config.seq_len,
            cap,
            config.threads,
        ):
            history_rows += res.history_rows
            for g in GSUS:
                lens[g].append(res.table.column(f"{g}_len").to_numpy())
            yield f"part-{res.shard:05d}.parquet", parquet_bytes(res.table)
        manifest["history_rows_read"] = history_rows
        for g in GSUS:
            v = np.concatenate(lens[g]) if lens[g] else np.zeros(0)
            manifest[f"{g}_nonempty"] = float((v > 0).mean()) if len(v) else 0.0
            manifest[f"{g}_mean_len"] = float(v.mean()) if len(v) else 0.0

    written = publish_streaming(lake, partition_dir(SEQUENCES, key), parts(), manifest)
    seconds = max(time.perf_counter() - t, 1e-9)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": exposures.num_rows,
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
            "exposures_per_s": round(exposures.num_rows / seconds),
            "bytes_written": written,
            "path": dg.MetadataValue.path(lake.url(partition_dir(SEQUENCES, key))),
        }
    )


def history_frame(lake: Store, hour_ms: int, key: str, users: np.ndarray) -> pd.DataFrame:
    """Rows of ``users`` in store order (history[H-1], then the hour's interactions) as a
    DataFrame, for the checks' recomputation; reads only the shards holding those users,
    one at a time."""
    catalog = load_catalog(lake)
    prev = previous_history(lake, hour_ms)
    n_shards = prev[1]["n_shards"] if prev else DEFAULT_SHARDS
    load = old_loader(lake, prev, catalog, n_shards)
    parts = []
    for s in np.unique(shard_of(users, n_shards)):
        old = load(int(s))
        parts.append(take(old, np.flatnonzero(np.isin(old["user_id"], users))))
    new = hour_interactions(lake, key, catalog)
    parts.append(take(new, np.flatnonzero(np.isin(new["user_id"], users))))
    both = pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in parts[0]})
    # a user's old rows come from one shard and precede the hour's: a stable sort by user
    return both.iloc[np.argsort(both["user_id"].to_numpy(), kind="stable")]
