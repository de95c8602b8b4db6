"""The model variants the ablation compares (DESIGN §8), each a pair of overrides of the
model and training configurations, and their keys ``<name>-s<seed>``.

A variant is a first-class partition dimension in Dagster (next to the hour), so every
variant × seed is its own series of hourly checkpoints, predictions and evaluations,
visible and backfillable in the UI.
"""

from __future__ import annotations

import dataclasses
import re

from ml.models.ranking import MomentCrossConfig
from ml.train.stream import TrainConfig

# Table sizes for the simulator's scale (thousands of users, hundreds of rooms, ~10^4
# videos); a deployment raises them through the variant's overrides.
BASE_MODEL = MomentCrossConfig(
    user_rows=1 << 15, room_rows=1 << 12, author_rows=1 << 12, item_rows=1 << 16,
    seq_author_rows=1 << 13,
)  # fmt: skip
BASE_TRAIN = TrainConfig()

# name -> (model overrides, training overrides), the full model first
VARIANTS: dict[str, tuple[dict, dict]] = {
    "full": ({}, {}),  # moment stream, 30 s features, Cross, PLE
    "no_cross": ({"use_cross": False}, {}),
    "stale_5m": ({}, {"freshness": "5m"}),
    "no_realtime": ({"use_realtime": False}, {}),
    "fast_only": ({}, {"mode": "fast"}),
    "fast_slow": ({}, {"mode": "fast+slow"}),
    "mmoe": ({"backbone": "mmoe"}, {}),
    # the external baseline: DeepCTR-Torch's PLE on the same inputs (sequences mean-pooled),
    # trained as the full model is (moment stream, 30 s features)
    "deepctr_ple": ({"family": "deepctr_ple"}, {}),
}
SEEDS = (0, 1, 2)
VARIANT_KEYS = tuple(f"{name}-s{seed}" for name in VARIANTS for seed in SEEDS)
DEFAULT_VARIANT = "full-s0"
_KEY_RE = re.compile(r"^([a-z][a-z0-9_]*)-s([0-9]+)$")


def parse_variant(key: str) -> tuple[str, int]:
    m = _KEY_RE.match(key)
    if not m or m.group(1) not in VARIANTS:
        raise ValueError(f"unknown variant {key!r}: one of {', '.join(VARIANT_KEYS)}")
    return m.group(1), int(m.group(2))


def variant_configs(key: str) -> tuple[MomentCrossConfig, TrainConfig]:
    """The model and training configurations of variant ``key`` (the seed included)."""
    name, seed = parse_variant(key)
    model_over, train_over = VARIANTS[name]
    return (
        dataclasses.replace(BASE_MODEL, **model_over),
        dataclasses.replace(BASE_TRAIN, **train_over, seed=seed),
    )
