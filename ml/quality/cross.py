"""Data-quality rules of the Cross side (user history, GSU sequences) as frames and GX
expectations; the Dagster checks only read partitions and call these."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml import schema as S
from ml.cross.catalog_view import CatalogView
from ml.cross.gsu import GSUS
from ml.cross.gsu_reference import reference_sequences
from ml.cross.history import ACTION_CODES, Columns, read_shard, shard_of
from ml.io.store import Store
from ml.quality.runner import Expect, rate_expectation

HISTORY_COUNTERS = (
    "unsorted_rows",  # a row before its predecessor in (user_id, report_time_ms)
    "over_cap_users",  # users with more rows than the cap
    "misplaced_rows",  # rows in a shard their user does not hash to
    "bad_actions",  # action codes outside ACTION_CODES
    "future_rows",  # reported after the partition hour
    "bad_catalog_refs",  # category or emb_row below -1
)


def history_shard_counts(cols: Columns, shard: int, n_shards: int, cap: int, hour_end: int) -> dict:
    """Violations of the layout and content rules in one history shard."""
    u, t = cols["user_id"], cols["report_time_ms"]
    n = len(u)
    same = u[1:] == u[:-1]
    unsorted = int(np.sum((u[1:] < u[:-1]) | (same & (t[1:] < t[:-1]))))
    if n:
        _, counts = np.unique(u, return_counts=True)
        over = int((counts > cap).sum())
    else:
        over = 0
    return {
        "unsorted_rows": unsorted,
        "over_cap_users": over,
        "misplaced_rows": int((shard_of(u, n_shards) != shard).sum()),
        "bad_actions": int((~np.isin(cols["action"], list(ACTION_CODES.values()))).sum()),
        "future_rows": int((t >= hour_end).sum()),
        "bad_catalog_refs": int(((cols["category"] < -1) | (cols["emb_row"] < -1)).sum()),
    }


def history_totals(lake: Store, rel_dir: str, manifest: dict, hour_end: int) -> tuple[dict, int]:
    """(violations summed over the shards, rows) of a published history partition, reading
    one shard at a time."""
    totals = dict.fromkeys(HISTORY_COUNTERS, 0)
    rows = 0
    for s in range(manifest["n_shards"]):
        cols = read_shard(lake, rel_dir, s)
        rows += len(cols["user_id"])
        counts = history_shard_counts(cols, s, manifest["n_shards"], manifest["cap"], hour_end)
        for k, v in counts.items():
            totals[k] += v
    return totals, rows


def history_expectations() -> list[Expect]:
    exps = [rate_expectation(c, 0, 0) for c in HISTORY_COUNTERS]
    exps.append(rate_expectation("unbalanced_rows", 0, 0))
    return exps


def interaction_count(live: pa.Table, short_video: pa.Table) -> int:
    """Interactions among raw events, recounted from event types alone."""
    total = 0
    for domain, events in ((S.LIVE, live), (S.SHORT_VIDEO, short_video)):
        types = [t for (d, t) in ACTION_CODES if d == domain]
        total += int(pc.sum(pc.is_in(events.column("event_type"), pa.array(types))).as_py() or 0)
    return total


def leakage_frame(seqs: pa.Table) -> pd.DataFrame:
    return seqs.select(["t0_ms", *[f"{g}_max_report_ms" for g in GSUS]]).to_pandas()


def leakage_expectations() -> list[Expect]:
    """Every item of every sequence was reported strictly before t0 (-1 when empty)."""
    return [
        Expect(
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": "t0_ms", "column_B": f"{g}_max_report_ms", "or_equal": False},
        )
        for g in GSUS
    ]


def recompute_frame(
    seqs: pa.Table,
    history_of: Callable[[np.ndarray], pd.DataFrame],
    catalog: CatalogView,
    length: int,
    cap: int,
    n: int,
    seed: int,
) -> pd.DataFrame:
    """Recompute n random exposures' GSUs with the reference (pandas) definition from
    the history filtered to rows reported before t0; count stored columns that differ.

    ``history_of(users)`` returns those users' rows in store order (history[H-1] rows,
    then the hour's own), as a DataFrame."""
    if seqs.num_rows == 0:
        return pd.DataFrame({"columns_differing": [0]})
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(seqs.num_rows, size=min(n, seqs.num_rows), replace=False))
    sample = seqs.take(pa.array(picks))
    rows = history_of(np.unique(sample.column("user_id").to_numpy()))
    groups = dict(tuple(rows.groupby("user_id", sort=False))) if len(rows) else {}
    empty = rows.iloc[:0]
    diffs = []
    for stored in sample.to_pylist():
        ref = reference_sequences(
            groups.get(stored["user_id"], empty), stored, catalog, length, cap
        )
        diffs.append(sum(stored[k] != v for k, v in ref.items()))
    return pd.DataFrame({"columns_differing": diffs})


def conservation_frame(seq_ids: pa.Array, exposure_ids: pa.Array) -> pd.DataFrame:
    """One row of counts: exposures without a sequence row, rows of no exposure, repeats."""
    seq, ex = pc.unique(seq_ids), pc.unique(exposure_ids)
    return pd.DataFrame(
        {
            "missing": [int(pc.sum(pc.invert(pc.is_in(ex, seq))).as_py() or 0)],
            "extra": [int(pc.sum(pc.invert(pc.is_in(seq, ex))).as_py() or 0)],
            "repeated": [len(seq_ids) - len(seq)],
        }
    )


def conservation_expectations() -> list[Expect]:
    return [rate_expectation(c, 0, 0) for c in ("missing", "extra", "repeated")]
