"""How much of the click signal do the ranking model's inputs carry? A probe for the
ablation's oracle gap: scikit-learn's gradient-boosted trees (an established learner, many
passes, final labels: every advantage the streaming model does not have) on the same
exposures' inputs, trained on the first hours and scored on the later ones, beside the
simulator's oracle on the same exposures.

Features per exposure, all as known at t0 (the tensors the model reads, ``hour_data`` of
the full variant): the 12 real-time room features (30 s freshness), the 8 user
aggregates, hour / weekday / page, and per GSU the dot product of the mean content
embedding of its real items with the room's, and its length. The ids are left out (trees
cannot use hashed ids; the model can, but learns them from one pass).

    python -m ml.evaluate.input_probe --root <a study root> [--hours 16] [--train-hours 12]

Needs scikit-learn (in the dev extras ``make setup`` installs).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml.evaluate import metrics as M
from ml.evaluate.truth import read_oracle
from ml.hours import HOUR_MS, parse_hour, partition_key
from ml.io.lake import LIVE_OUTCOMES, partition_dir
from ml.io.store import Store
from ml.moment.emission_hour import LOOKBACK_HOURS
from ml.train.publish import read_hour_data, window_keys
from ml.train.stream import StreamTrainer
from ml.train.variants import variant_configs


def hour_features(lake: Store, trainer: StreamTrainer, hour_ms: int, start_ms: int):
    """(features (n, F), click labels (n,), oracle P(enter) (n,), NaN where unmatched) of
    the exposures with t0 in the hour that have final outcomes."""
    data = read_hour_data(lake, trainer, hour_ms, window_keys(hour_ms, LOOKBACK_HOURS, start_ms))
    r, rows = data.rows, data.score_rows
    t0 = r.t0_ms[rows]
    rows = rows[(t0 >= hour_ms) & (t0 < hour_ms + HOUR_MS)]
    content = data.content.numpy()
    room = content[r.room_row[rows]]
    parts = [r.room_feats[rows], r.user_feats[rows], r.context[rows].astype(np.float32)]
    for g in range(r.seq["row"].shape[1]):
        mask = r.seq["mask"][rows, g]
        emb = content[r.seq["row"][rows, g]] * mask[..., None]
        mean = emb.sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
        parts.append(np.stack([(mean * room).sum(1), mask.sum(1)], 1).astype(np.float32))
    x = np.concatenate(parts, 1)
    outcomes = lake.read_published(partition_dir(LIVE_OUTCOMES, partition_key(hour_ms)))
    ids = r.exposure_id.take(pa.array(rows))
    at = pc.index_in(ids, value_set=outcomes.column("exposure_id").combine_chunks())
    found = pc.is_valid(at).to_numpy(zero_copy_only=False)
    pick = at.to_numpy(zero_copy_only=False)[found].astype(np.int64)
    y = outcomes.column("y_click").to_numpy()[pick].astype(np.float64)
    oracle = np.full(len(pick), np.nan)
    table = read_oracle(lake, hour_ms)
    if table is not None:
        key = (r.user_id[rows][found], r.room_id[rows][found], r.t0_ms[rows][found])
        truth = {
            (u, i, t): p
            for u, i, t, p in zip(*(table.column(c).to_numpy() for c in
                                    ("user_id", "item_id", "event_time_ms", "p_enter")), strict=True)
        }  # fmt: skip
        oracle = np.array([truth.get(k, np.nan) for k in zip(*key, strict=True)], np.float64)
    return x[found], y, oracle


def probe(lake: Store, start_ms: int, hours: int, train_hours: int, seed: int = 0) -> dict:
    """Fit on hours [0, train_hours), score hours [train_hours, hours): click AUC of the
    trees and of the oracle on the scored exposures."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    trainer = StreamTrainer(*variant_configs("full-s0"))
    per_hour = [
        hour_features(lake, trainer, start_ms + i * HOUR_MS, start_ms) for i in range(hours)
    ]
    x_fit = np.concatenate([h[0] for h in per_hour[:train_hours]])
    y_fit = np.concatenate([h[1] for h in per_hour[:train_hours]])
    x, y, q = (np.concatenate([h[k] for h in per_hour[train_hours:]]) for k in range(3))
    trees = HistGradientBoostingClassifier(max_iter=300, random_state=seed).fit(x_fit, y_fit)
    p = trees.predict_proba(x)[:, 1]
    has = np.isfinite(q)
    return {
        "fit_exposures": len(y_fit), "scored_exposures": len(y),
        "trees_click_auc": M.auc(y, p), "oracle_click_auc": M.auc(y[has], q[has]),
        "oracle_matched": int(has.sum()),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.evaluate.input_probe")
    ap.add_argument("--root", required=True, help="a study root (its data layer built)")
    ap.add_argument("--start", default="2026-01-01-00:00")
    ap.add_argument("--hours", type=int, default=16)
    ap.add_argument("--train-hours", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not 0 < args.train_hours < args.hours:
        ap.error("--train-hours must lie between 0 and --hours")
    out = probe(Store(args.root), parse_hour(args.start), args.hours, args.train_hours, args.seed)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
