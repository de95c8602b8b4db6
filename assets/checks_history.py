"""Asset checks of the Cross side: GX suites (ml.quality_history) inside Dagster checks.

Blocking: the history store's layout and row conservation; no sequence item reported at
or after t0 (stored evidence for every exposure, plus a recomputation of sampled
exposures from the history filtered to report < t0); one sequence row per exposure.
"""

import dagster as dg
import pandas as pd

from assets.checks import check_result, published_manifest
from assets.history import HISTORY, RAW_LIVE, RAW_SV, SEQUENCES, history_frame, load_catalog
from assets.labels import read_window
from assets.partitions import hourly_partitions, partition_hour
from ml import quality
from ml import quality_history as QH
from ml.data.gsu import GSUS
from ml.data.history import read_shard
from ml.hours import HOUR_MS
from ml.io.lake import partition_dir
from resources.storage import LakeStorage

RECOMPUTE_SAMPLE = 30


@dg.asset_check(
    asset=HISTORY,
    name="history_invariants",
    partitions_def=hourly_partitions,
    blocking=True,
    description="Every shard sorted by (user, report time), each user in its hash shard with "
    "<= cap rows, valid action codes, nothing reported after the hour; rows(H) + evicted = "
    "rows(H-1) + interactions reported in H (recounted from the raw partitions).",
)
def history_invariants(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    rel = partition_dir(HISTORY, key)
    man = published_manifest(lake, rel, f"{HISTORY} {key}")
    totals = dict.fromkeys(QH.HISTORY_COUNTERS, 0)
    rows = 0
    for s in range(man["n_shards"]):  # one shard in memory at a time
        cols = read_shard(lake, rel, s)
        rows += len(cols["user_id"])
        counts = QH.history_shard_counts(cols, s, man["n_shards"], man["cap"], hour_ms + HOUR_MS)
        for k, v in counts.items():
            totals[k] += v
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
    outcome = quality.validate(frame, QH.history_expectations(), f"{HISTORY}_invariants")
    return check_result(outcome, rows=rows, interactions_added=added, evicted=man["evicted"])


@dg.asset_check(
    asset=SEQUENCES,
    name="sequence_leakage",
    partitions_def=hourly_partitions,
    blocking=True,
    description="No GSU item reported at or after t0: each sequence's latest report time < t0 "
    f"for every exposure, and {RECOMPUTE_SAMPLE} random exposures recomputed from the history "
    "filtered to report < t0 (the pandas reference definition) are identical.",
)
def sequence_leakage(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, hour_ms = partition_hour(context)
    lake = storage.store()
    rel = partition_dir(SEQUENCES, key)
    man = published_manifest(lake, rel, f"{SEQUENCES} {key}")
    seqs = lake.read_published(rel).combine_chunks()
    evidence = quality.validate(
        QH.leakage_frame(seqs), QH.leakage_expectations(), f"{SEQUENCES}_leakage"
    )
    frame = QH.recompute_frame(
        seqs,
        lambda users: history_frame(lake, hour_ms, key, users),
        load_catalog(lake),
        man["seq_len"],
        man["cap"],
        RECOMPUTE_SAMPLE,
        seed=hour_ms // HOUR_MS,
    )
    recompute = quality.validate(
        frame, [quality.rate_expectation("columns_differing", 0, 0)], f"{SEQUENCES}_recompute"
    )
    outcome = quality.SuiteOutcome(
        evidence.success and recompute.success, evidence.results + recompute.results
    )
    return check_result(
        outcome,
        exposures=seqs.num_rows,
        recomputed=len(frame),
        gsus=", ".join(GSUS),
    )


@dg.asset_check(
    asset=SEQUENCES,
    name="sequence_conservation",
    partitions_def=hourly_partitions,
    blocking=True,
    description="Exactly one sequence row per live exposure of the hour (ids match, no repeats).",
)
def sequence_conservation(context: dg.AssetCheckExecutionContext, storage: LakeStorage):
    key, _ = partition_hour(context)
    lake = storage.store()
    seq_ids = lake.read_published(partition_dir(SEQUENCES, key), columns=["exposure_id"])
    ex_ids = lake.read_published(partition_dir("live_exposures", key), columns=["exposure_id"])
    seq_ids, ex_ids = seq_ids.column(0).combine_chunks(), ex_ids.column(0).combine_chunks()
    frame = QH.conservation_frame(seq_ids, ex_ids)
    outcome = quality.validate(frame, QH.conservation_expectations(), f"{SEQUENCES}_conservation")
    return check_result(outcome, sequences=len(seq_ids), exposures=len(ex_ids))


history_checks = [history_invariants, sequence_leakage, sequence_conservation]
