"""Models (plain torch, no Dagster): Moment & Cross ranking and ContentCTR.

Ranking: ``inputs`` is the contract a data loader fills, ``ranking`` the model, ``losses``
the label streams' losses; ``blocks``, ``attention``, ``experts`` and ``gather`` are the
parts. ContentCTR: ``content_ctr`` the model, ``content_losses`` its losses (point,
pairwise, DTW alignment), ``soft_dtw`` the distance the alignment is built on.
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
