"""Asset checks of the Cross side: GX suites (ml.quality.cross) inside Dagster checks.

Blocking: the history store's layout and row conservation; no sequence item reported at
or after t0 (stored evidence for every exposure, plus a recomputation of sampled
exposures from the history filtered to report < t0); one sequence row per exposure.
"""

import dagster as dg
import pandas as pd

from assets.cross import load_catalog, previous_history, raw_interactions
from assets.gates import lake_check
from assets.lake import (
    EXPOSURE_SEQUENCES,
    LIVE_EXPOSURES,
    RAW_LIVE,
    RAW_SV,
    USER_HISTORY,
    read_partition,
    read_window,
    require_published,
)
from assets.metadata import check_result
from assets.partitions import hourly_partitions, partition_hour
from ml import quality
from ml.cross.cross_hour import history_frame, previous_shard_loader
from ml.cross.history import DEFAULT_SHARDS
from ml.hours import HOUR_MS
from ml.io.lake import partition_dir
from ml.quality import cross as QH
from ml.schema import GSUS
from resources.storage import LakeStorage

RECOMPUTE_SAMPLE = 30


@lake_check(
    asset=USER_HISTORY,
    name="history_invariants",
    partitions_def=hourly_partitions,
    blocking=True,
    description="Every shard sorted by user and report time, each user in its own shard with "
    "at most the capped number of rows, valid action codes, nothing reported after the hour; "
    "and this hour's rows plus those the cap dropped equal the previous hour's rows plus the "
    "interactions reported this hour (recounted from the raw tables).",
)
def history_invariants(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    man = require_published(lake, USER_HISTORY, key)
    totals, rows = QH.history_totals(lake, partition_dir(USER_HISTORY, key), man, hour_ms + HOUR_MS)
    added = QH.interaction_count(
        read_window(lake, RAW_LIVE, [key], columns=["event_type"]),
        read_window(lake, RAW_SV, [key], columns=["event_type"]),
    )
    frame = pd.DataFrame(
        {
            **{k: [v] for k, v in totals.items()},
            "unbalanced_rows": [rows + man["evicted"] - man["previous_rows"] - added],
        }
    )
    outcome = quality.validate(frame, QH.history_expectations(), f"{USER_HISTORY}_invariants")
    return check_result(outcome, rows=rows, interactions_added=added, evicted=man["evicted"])


@lake_check(
    asset=EXPOSURE_SEQUENCES,
    name="sequence_leakage",
    partitions_def=hourly_partitions,
    blocking=True,
    description="No sequence holds anything reported at or after its impression: each "
    "sequence's latest report time is before the impression for every row, and "
    f"{RECOMPUTE_SAMPLE} random impressions rebuilt by a plain reference implementation from "
    "the history before the impression match exactly.",
)
def sequence_leakage(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    man = require_published(lake, EXPOSURE_SEQUENCES, key)
    seqs = read_partition(lake, EXPOSURE_SEQUENCES, key).combine_chunks()
    evidence = quality.validate(
        QH.leakage_frame(seqs), QH.leakage_expectations(), f"{EXPOSURE_SEQUENCES}_leakage"
    )
    catalog = load_catalog(lake, key)
    prev = previous_history(lake, hour_ms)
    n_shards = prev.n_shards if prev else DEFAULT_SHARDS
    load = previous_shard_loader(lake, prev, catalog, n_shards)
    new = raw_interactions(lake, key, catalog)
    frame = QH.recompute_frame(
        seqs,
        lambda users: history_frame(load, n_shards, new, users),
        catalog,
        man["seq_len"],
        man["cap"],
        RECOMPUTE_SAMPLE,
        seed=hour_ms // HOUR_MS,
    )
    recompute = quality.validate(
        frame,
        [quality.rate_expectation("columns_differing", 0, 0)],
        f"{EXPOSURE_SEQUENCES}_recompute",
    )
    return check_result(
        quality.merge(evidence, recompute),
        exposures=seqs.num_rows,
        recomputed=len(frame),
        gsus=", ".join(GSUS),
    )


@lake_check(
    asset=EXPOSURE_SEQUENCES,
    name="sequence_conservation",
    partitions_def=hourly_partitions,
    blocking=True,
    description="Exactly one sequence row per live exposure of the hour (ids match, no repeats).",
)
def sequence_conservation(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, _ = partition_hour(context)
    lake = storage.store()
    seq_ids = read_partition(lake, EXPOSURE_SEQUENCES, key, columns=["exposure_id"])
    ex_ids = read_partition(lake, LIVE_EXPOSURES, key, columns=["exposure_id"])
    seq_ids, ex_ids = seq_ids.column(0).combine_chunks(), ex_ids.column(0).combine_chunks()
    frame = QH.conservation_frame(seq_ids, ex_ids)
    outcome = quality.validate(
        frame, QH.conservation_expectations(), f"{EXPOSURE_SEQUENCES}_conservation"
    )
    return check_result(outcome, sequences=len(seq_ids), exposures=len(ex_ids))


cross_checks = [history_invariants, sequence_leakage, sequence_conservation]
