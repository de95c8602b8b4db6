"""The ranking model's input contract: one batch of live exposures as torch tensors.

A data loader elsewhere builds :class:`RankingInputs`; the model reads nothing else. Shapes:
B = batch, G = ``len(GSUS)`` (5), L = sequence length, E = content embedding width, N =
rows of the catalog's content table (row 0 = padding, all zeros).

Padding conventions (every ``seq_*`` field, where ``seq_mask`` is False): ids 0, category 0,
content row 0, gap bucket 0, action 0. The model must not depend on what a padded position
holds; it reads ``seq_mask`` only, so a loader may leave anything there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ml.schema import EMBED_DIM, GSUS, N_ACTION_CODES, PAGES

# Bucket 0: gap < 1 s; bucket k >= 1: 2^(k-1) s <= gap < 2^k s; the last bucket also takes
# everything beyond (2^22 s ~ 48 days, longer than any history we keep).
N_GAP_BUCKETS = 24
N_CONTEXT = 3  # hour_of_day, day_of_week, page code
N_PAGE_CODES = len(PAGES) + 1  # 0 = unknown page

# Fields indexed by sample (the first dim is B); content_table is shared by the batch.
_SHARED_FIELDS = ("content_table",)


def gap_buckets(gap_ms: np.ndarray) -> np.ndarray:
    """Log2-spaced bucket of a time gap in ms, vectorised; any shape in, same shape out.

    Negative gaps (clock skew) fall in bucket 0 with the sub-second ones.
    """
    s = np.maximum(np.asarray(gap_ms, dtype=np.int64), 0) // 1000
    # frexp's exponent of a positive integer is its bit length (exact below 2^53; above
    # that the cap applies anyway), so bucket = bit_length(seconds), 0 for s = 0.
    _, exp = np.frexp(s.astype(np.float64))
    return np.minimum(exp.astype(np.int64), N_GAP_BUCKETS - 1)


@dataclass
class RankingInputs:
    """One batch. int64 unless noted; (B, G, L) fields are per GSU in ``GSUS`` order."""

    user_id: torch.Tensor  # (B,) raw id
    room_id: torch.Tensor  # (B,) raw id
    author_id: torch.Tensor  # (B,) raw id of the room's author
    context: torch.Tensor  # (B, 3): hour 0..23, weekday 0..6, page code 0..len(PAGES)
    room_row: torch.Tensor  # (B,) row of the room in content_table, 0 = unknown
    content_table: torch.Tensor  # float32 (N, E), row 0 zeros; shared by the batch
    room_feats: torch.Tensor  # float32 (B, F_room), already transformed
    user_feats: torch.Tensor  # float32 (B, F_user), already log-scaled
    seq_item: torch.Tensor  # (B, G, L) raw item id, 0 = pad
    seq_author: torch.Tensor  # (B, G, L) raw author id, 0 = pad
    seq_category: torch.Tensor  # (B, G, L) category + 1, 0 = pad / unknown
    seq_row: torch.Tensor  # (B, G, L) row into content_table, 0 = pad
    seq_gap: torch.Tensor  # (B, G, L) gap bucket in [0, N_GAP_BUCKETS)
    seq_action: torch.Tensor  # (B, G, L) action code in [0, N_ACTION_CODES)
    seq_mask: torch.Tensor  # bool (B, G, L), True = real item
    # True: the five id fields already hold table rows (``MomentCrossModel.hash_ids``, done
    # once per exposure by a loader instead of once per step in the model).
    hashed: bool = False

    @property
    def batch_size(self) -> int:
        return int(self.user_id.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.seq_mask.shape[-1])

    def _map(self, fn, shared_fn=None) -> RankingInputs:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, torch.Tensor):
                out[f.name] = v
            else:
                out[f.name] = (shared_fn or fn)(v) if f.name in _SHARED_FIELDS else fn(v)
        return RankingInputs(**out)

    def to(self, device, non_blocking: bool = False) -> RankingInputs:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> RankingInputs:
        return self._map(lambda t: t.pin_memory())

    def select(self, idx) -> RankingInputs:
        """Rows ``idx`` (slice, int tensor or bool mask) of every per-sample field."""
        return self._map(lambda t: t[idx], shared_fn=lambda t: t)

    def validate(self) -> None:
        """Raise ValueError on a shape or dtype that breaks the contract (loader tests)."""
        b, g = self.batch_size, len(GSUS)
        want_1d = ("user_id", "room_id", "author_id", "room_row")
        for name in want_1d:
            _check(name, getattr(self, name), torch.int64, (b,))
        _check("context", self.context, torch.int64, (b, N_CONTEXT))
        if self.content_table.dim() != 2 or self.content_table.dtype != torch.float32:
            raise ValueError("content_table must be float32 (N, E)")
        for name in ("room_feats", "user_feats"):
            t = getattr(self, name)
            if t.dim() != 2 or t.shape[0] != b or t.dtype != torch.float32:
                raise ValueError(f"{name} must be float32 (B, F)")
        seq_shape = (b, g, self.seq_len)
        for name in ("seq_item", "seq_author", "seq_category", "seq_row", "seq_gap", "seq_action"):
            _check(name, getattr(self, name), torch.int64, seq_shape)
        _check("seq_mask", self.seq_mask, torch.bool, seq_shape)


def _check(name: str, t: torch.Tensor, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    if t.dtype != dtype or tuple(t.shape) != shape:
        raise ValueError(f"{name}: want {dtype} {shape}, got {t.dtype} {tuple(t.shape)}")


def random_inputs(
    batch: int,
    seq_len: int = 50,
    n_content: int = 100,
    f_room: int = 12,
    f_user: int = 8,
    generator: torch.Generator | None = None,
    seed: int = 0,
    n_categories: int = 32,
    empty_share: float = 0.1,
    content_dim: int = EMBED_DIM,
) -> RankingInputs:
    """Valid random inputs for tests and benchmarks.

    Each (sample, GSU) sequence holds a random number of real items at its front (newest
    first, like the GSU tables) and padding behind; ``empty_share`` of them are empty.
    Padded positions hold the padding values of the contract.
    """
    if n_content < 2:
        raise ValueError("n_content must be >= 2 (row 0 is padding)")
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    n_g = len(GSUS)

    def ids(*shape):
        return torch.randint(1, 1 << 40, shape, generator=g)

    lengths = torch.randint(0, seq_len + 1, (batch, n_g), generator=g)
    lengths[torch.rand(batch, n_g, generator=g) < empty_share] = 0
    mask = torch.arange(seq_len)[None, None, :] < lengths[..., None]

    def seq(t: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, t, torch.zeros_like(t))

    shape = (batch, n_g, seq_len)
    table = torch.randn(n_content, content_dim, generator=g)
    table[0] = 0.0
    context = torch.stack(
        [
            torch.randint(0, 24, (batch,), generator=g),
            torch.randint(0, 7, (batch,), generator=g),
            torch.randint(0, N_PAGE_CODES, (batch,), generator=g),
        ],
        dim=1,
    )
    return RankingInputs(
        user_id=ids(batch),
        room_id=ids(batch),
        author_id=ids(batch),
        context=context,
        room_row=torch.randint(0, n_content, (batch,), generator=g),
        content_table=table,
        room_feats=torch.rand(batch, f_room, generator=g) * 3.0,
        user_feats=torch.rand(batch, f_user, generator=g) * 5.0,
        seq_item=seq(ids(*shape)),
        seq_author=seq(ids(*shape)),
        seq_category=seq(torch.randint(1, n_categories + 1, shape, generator=g)),
        seq_row=seq(torch.randint(1, n_content, shape, generator=g)),
        seq_gap=seq(torch.randint(0, N_GAP_BUCKETS, shape, generator=g)),
        seq_action=seq(torch.randint(0, N_ACTION_CODES, shape, generator=g)),
        seq_mask=mask,
    )
