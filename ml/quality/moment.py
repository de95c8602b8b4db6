"""Data-quality rules of the Moment side (label streams, exposures), as frames
and GX expectations; the Dagster checks only read partitions and call these."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml.moment.features import ROOM_FEATURES, USER_FEATURES, exposure_features
from ml.moment.sessions import LONG_VIEW_MS, TASK_EVENT, TASKS
from ml.moment.user_activity import ActivityBefore
from ml.quality.runner import Expect

# Positive-rate bands per task of the fast stream (outside: the labels are broken).
LABEL_RATE_BANDS = {
    "click": (0.005, 0.6),
    "long_view": (0.0, 0.6),
    "like": (0.0, 0.4),
    "comment": (0.0, 0.3),
    "follow": (0.0, 0.2),
    "gift": (0.0, 0.2),
}
MIN_SAMPLES_FOR_RATES = 200  # fewer samples: rates are noise, the band is not judged
# Hour-over-hour drift: a rate may move by this share of the previous hours' rate, or by
# four binomial standard errors, whichever is larger.
MAX_RELATIVE_DRIFT = float(os.environ.get("LIVECROSS_MAX_LABEL_DRIFT", "0.5"))


def rate_frame(samples: pa.Table) -> pd.DataFrame:
    """One row per task: labelled count and positive rate."""
    rows = []
    for t in TASKS:
        m = samples.column(f"m_{t}").to_numpy(zero_copy_only=False)
        y = samples.column(f"y_{t}").to_numpy(zero_copy_only=False)
        n = int(m.sum())
        rows.append({"task": t, "labelled": n, "rate": float(y[m].mean()) if n else 0.0})
    return pd.DataFrame(rows)


def rate_band_expectations(frame: pd.DataFrame) -> list[Expect]:
    out = []
    for t, (lo, hi) in LABEL_RATE_BANDS.items():
        n = int(frame.loc[frame.task == t, "labelled"].iloc[0])
        if n >= MIN_SAMPLES_FOR_RATES:
            out.append(
                Expect(
                    "ExpectColumnValuesToBeBetween",
                    {"column": f"rate_{t}", "min_value": lo, "max_value": hi},
                )
            )
    return out


def wide_rates(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({f"rate_{r.task}": [r.rate] for r in frame.itertuples()})


def drift_frame(current: pd.DataFrame, previous: list[dict]) -> tuple[pd.DataFrame, list[Expect]]:
    """|rate - previous hours' rate| per task against the allowed drift: a share of the
    previous rate, or four standard errors of the difference of two proportions (pooled),
    whichever is larger — so rare tasks (a few follows an hour) do not trip on noise."""
    rows, expectations = {}, []
    for r in current.itertuples():
        prev = [
            (p[f"fast_{r.task}_rate"], p[f"fast_{r.task}_labels"])
            for p in previous
            if p.get(f"fast_{r.task}_labels", 0) >= MIN_SAMPLES_FOR_RATES
        ]
        if not prev or r.labelled < MIN_SAMPLES_FOR_RATES:
            continue
        n_prev = sum(n for _, n in prev)
        base = sum(rate * n for rate, n in prev) / n_prev
        pooled = (base * n_prev + r.rate * r.labelled) / (n_prev + r.labelled)
        se = math.sqrt(pooled * (1 - pooled) * (1 / r.labelled + 1 / n_prev))
        allowed = max(MAX_RELATIVE_DRIFT * base, 4 * se)
        rows[f"drift_{r.task}"] = [abs(r.rate - base)]
        expectations.append(
            Expect(
                "ExpectColumnValuesToBeBetween",
                {"column": f"drift_{r.task}", "min_value": 0.0, "max_value": allowed},
            )
        )
    return pd.DataFrame(rows if rows else {"none": [0]}), expectations


def mask_frame(samples: pa.Table) -> pd.DataFrame:
    m = np.stack([samples.column(f"m_{t}").to_numpy(zero_copy_only=False) for t in TASKS], axis=1)
    y = np.stack([samples.column(f"y_{t}").to_numpy(zero_copy_only=False) for t in TASKS], axis=1)
    return pd.DataFrame(
        {
            "kind": samples.column("kind").to_numpy(zero_copy_only=False),
            "n_labelled": m.sum(axis=1),
            "n_positive": (y.astype(bool) & m).sum(axis=1),
            "y_outside_mask": (y.astype(bool) & ~m).sum(axis=1),
            "cutoff_slack_ms": samples.column("emit_ms").to_numpy()
            - samples.column("label_cutoff_ms").to_numpy(),
        }
    )


def mask_expectations(stream: str) -> list[Expect]:
    e = [
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "n_labelled", "min_value": 1, "max_value": len(TASKS)},
        ),
        Expect(
            "ExpectColumnValuesToBeBetween",
            {"column": "y_outside_mask", "min_value": 0, "max_value": 0},
        ),
        Expect("ExpectColumnValuesToBeBetween", {"column": "cutoff_slack_ms", "min_value": 0}),
    ]
    if stream == "fast":
        e.append(
            Expect(
                "ExpectColumnValuesToBeBetween",
                {"column": "n_labelled", "min_value": len(TASKS), "max_value": len(TASKS)},
            )
        )
    if stream == "slow":  # only missing positives are labelled
        e.append(
            Expect(
                "ExpectColumnPairValuesToBeEqual",
                {"column_A": "n_labelled", "column_B": "n_positive"},
            )
        )
    if stream == "moment":
        e.append(
            Expect(
                "ExpectColumnValuesToBeInSet",
                {"column": "kind", "value_set": ["first_positive", "exit", "no_enter"]},
            )
        )
    return e


def moment_kind_frame(samples: pa.Table) -> pd.DataFrame:
    """first_positive rows: exactly one labelled task, positive; exit rows: all zero."""
    f = mask_frame(samples)
    first = f.kind == "first_positive"
    return pd.DataFrame(
        {
            "first_ok": np.where(first, (f.n_labelled == 1) & (f.n_positive == 1), True),
            "exit_ok": np.where(~first, f.n_positive == 0, True),
        }
    )


def evidence_frame(samples: pa.Table, live: pa.Table) -> pd.DataFrame:
    """For every positive label: is there an event of (user, room) that proves it, with
    t0 <= event time and report time <= the sample's label cutoff? Re-derived from raw
    events with a plain join, independently of the timeline code."""
    s = samples.select(
        [
            "exposure_id",
            "user_id",
            "room_id",
            "t0_ms",
            "label_cutoff_ms",
            *[f"y_{t}" for t in TASKS],
            *[f"m_{t}" for t in TASKS],
        ]
    ).to_pandas()
    ev = live.select(
        ["user_id", "item_id", "event_type", "event_time_ms", "report_time_ms", "watch_ms"]
    ).to_pandas()
    ev = ev.rename(columns={"item_id": "room_id"})
    proven = np.ones(len(s), bool)
    for task in TASKS:
        pos = s[(s[f"y_{task}"] == 1) & s[f"m_{task}"]][
            ["exposure_id", "user_id", "room_id", "t0_ms", "label_cutoff_ms"]
        ]
        if pos.empty:
            continue
        if task == "long_view":
            cand = ev[
                (ev.event_type != "impression")
                & ((ev.event_type != "exit") | (ev.watch_ms >= LONG_VIEW_MS))
            ]
        else:
            cand = ev[ev.event_type == TASK_EVENT[task]]
        j = pos.merge(cand, on=["user_id", "room_id"])
        ok = j[(j.event_time_ms >= j.t0_ms) & (j.report_time_ms <= j.label_cutoff_ms)]
        bad = ~pos.exposure_id.isin(ok.exposure_id)
        proven[s.index.get_indexer(pos.index[bad.to_numpy()])] = False
    return pd.DataFrame({"proven": proven})


def feature_recompute_frame(
    exposures: pa.Table,
    live: pa.Table,
    sv: pa.Table,
    n: int,
    seed: int,
    activity: ActivityBefore | None = None,
) -> pd.DataFrame:
    """Recompute n random exposures' features from events reported strictly before t0
    only (and the same activity snapshot, itself from before every t0); any difference
    means a feature saw the future."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(exposures.num_rows, size=min(n, exposures.num_rows), replace=False)
    diffs = []
    for i in np.sort(picks):
        row = exposures.slice(int(i), 1)
        t0 = row.column("t0_ms")[0].as_py()
        again = exposure_features(
            row,
            live.filter(pc.less(live.column("report_time_ms"), t0)),
            sv.filter(pc.less(sv.column("report_time_ms"), t0)),
            activity,
        )
        diffs.append(
            sum(again.column(c)[0] != row.column(c)[0] for c in ROOM_FEATURES + USER_FEATURES)
        )
    return pd.DataFrame({"features_differing": diffs or [0]})
