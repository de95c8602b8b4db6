"""Ranking models (plain torch, no Dagster): Moment & Cross and its building blocks.

``inputs`` is the contract a data loader fills, ``ranking`` the model, ``losses`` the
label streams' losses; ``blocks`` and ``experts`` are the parts.
"""

from ml.models.inputs import N_GAP_BUCKETS, RankingInputs, gap_buckets, random_inputs
from ml.models.losses import info_nce, masked_bce, pu_slow_correction, stream_loss
from ml.models.ranking import MomentCrossConfig, MomentCrossModel, ranking_score

__all__ = [
    "N_GAP_BUCKETS",
    "MomentCrossConfig",
    "MomentCrossModel",
    "RankingInputs",
    "gap_buckets",
    "info_nce",
    "masked_bce",
    "pu_slow_correction",
    "random_inputs",
    "ranking_score",
    "stream_loss",
]
