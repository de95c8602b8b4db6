"""Small building blocks of the ranking model: hashed id embeddings, MLPs, target attention.

Every block takes a frozen config, so a model's structure is one hashable value that a
checkpoint can store and compare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ml.models.attention import attend_and_mean
from ml.models.gather import lookup

_M32 = 0xFFFFFFFF
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


def make_activation(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; one of {sorted(_ACTIVATIONS)}") from None


def linear_init_(weight: torch.Tensor, bias: torch.Tensor | None, fan_in: int) -> None:
    """nn.Linear's default init (U(±1/sqrt(fan_in))) for a batched (…, in, out) weight."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)
    if bias is not None:
        nn.init.uniform_(bias, -bound, bound)


# ---- hashing ------------------------------------------------------------------------------
# murmur3's 32-bit finaliser on int64 tensors. Every product is split into 16-bit halves so
# no intermediate leaves int64's range: the result is exact and identical on every device
# and backend, where a plain 64-bit multiply would rely on signed-overflow wrapping.


def _mul32(h: torch.Tensor, c: int) -> torch.Tensor:
    """(h * c) mod 2^32 for h in [0, 2^32), c < 2^32, without overflowing int64."""
    lo, hi = h & 0xFFFF, h >> 16
    return (lo * c + (((hi * c) & 0xFFFF) << 16)) & _M32


def _fmix32(h: torch.Tensor) -> torch.Tensor:
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def _fmix32_int(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def hash_ids(ids: torch.Tensor, num_rows: int, salt: int = 0) -> torch.Tensor:
    """Row in [1, num_rows) of every int64 id, 0 for id 0 (padding / unknown); any shape.

    Both 32-bit halves of the id are mixed (negative ids too), and ``salt`` makes each
    table collide differently so two fields never share their collisions.
    """
    if num_rows < 2:
        raise ValueError("num_rows must be >= 2 (row 0 is reserved for id 0)")
    x = ids.to(torch.int64)
    s = _fmix32_int((salt * 0x9E3779B1 + 0x7F4A7C15) & _M32)
    h = _fmix32(((x >> 32) & _M32) ^ s)
    h = _fmix32((x & _M32) ^ _mul32(h, 0x9E3779B1))
    return torch.where(x == 0, 0, h % (num_rows - 1) + 1)


@dataclass(frozen=True)
class HashedEmbeddingConfig:
    num_rows: int
    dim: int
    salt: int = 0
    init_std: float = 0.05


class HashedEmbedding(nn.Module):
    """Raw int64 ids (any shape S) -> (*S, dim).

    Id 0 (padding / unknown) has row 0 to itself; it starts at zero and, like any row,
    learns from the real samples that carry it (an unknown user, say). Padded sequence
    positions never train it: the model zeroes them before anything reads them.
    """

    def __init__(self, cfg: HashedEmbeddingConfig):
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.empty(cfg.num_rows, cfg.dim))
        nn.init.normal_(self.weight, std=cfg.init_std)
        with torch.no_grad():
            self.weight[0].zero_()

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        return hash_ids(ids, self.cfg.num_rows, self.cfg.salt)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return lookup(self.weight, self.rows(ids))


# ---- MLP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MLPConfig:
    in_dim: int
    dims: tuple[int, ...]  # output width of every layer
    activation: str = "relu"
    dropout: float = 0.0
    final_activation: bool = True  # False for a layer that emits logits


class MLP(nn.Module):
    """(B, in_dim) -> (B, dims[-1]): Linear + activation (+ dropout) per layer."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        d = cfg.in_dim
        for i, out in enumerate(cfg.dims):
            layers.append(nn.Linear(d, out))
            if i < len(cfg.dims) - 1 or cfg.final_activation:
                layers.append(make_activation(cfg.activation))
                if cfg.dropout > 0:
                    layers.append(nn.Dropout(cfg.dropout))
            d = out
        self.net = nn.Sequential(*layers)
        self.out_dim = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ---- target attention (the ESU) -------------------------------------------------------------


@dataclass(frozen=True)
class TargetAttentionConfig:
    d_query: int
    d_key: int
    n_heads: int = 2
    d_head: int | None = None  # default d_key // n_heads
    d_out: int | None = None  # default d_key
    n_groups: int = 1  # G independent attentions (one per GSU), one set of weights each

    @property
    def head_dim(self) -> int:
        return self.d_head or max(1, self.d_key // self.n_heads)

    @property
    def out_dim(self) -> int:
        return self.d_out or self.d_key


class TargetAttention(nn.Module):
    """Multi-head attention of one query per sample over that sample's items, per group.

    query (B, Dq) or (B, G, Dq); keys (B, G, L, Dk); mask bool (B, G, L) -> (B, G, Dout).
    With n_groups = 1, keys (B, L, Dk) and mask (B, L) give (B, Dout).

    The query is a single vector, so the key and value projections are reassociated onto
    it: q·(W_k x) = (W_kᵀ q)·x and Σ a_l (W_v x_l) = W_v (Σ a_l x_l). Same result as
    projecting every item, but the per-item work drops from O(L·Dk·H·dh) to O(L·Dk·H), which is
    what makes 5 GSUs × 50 items cheap on a CPU. (A key bias only adds a per-query constant
    to every score and cancels in the softmax, so keys have none.)

    Padded items get exactly zero weight; a sequence with no real item outputs zeros
    (and a zero mean).
    """

    def __init__(self, cfg: TargetAttentionConfig):
        super().__init__()
        self.cfg = cfg
        g, h, dh, dq, dk, do = (
            cfg.n_groups,
            cfg.n_heads,
            cfg.head_dim,
            cfg.d_query,
            cfg.d_key,
            cfg.out_dim,
        )
        self.w_q = nn.Parameter(torch.empty(g, dq, h * dh))
        self.b_q = nn.Parameter(torch.empty(g, h * dh))
        self.w_k = nn.Parameter(torch.empty(g, h, dk, dh))
        self.w_v = nn.Parameter(torch.empty(g, h, dk, dh))
        self.b_v = nn.Parameter(torch.empty(g, h, dh))
        self.w_o = nn.Parameter(torch.empty(g, h * dh, do))
        self.b_o = nn.Parameter(torch.empty(g, do))
        linear_init_(self.w_q, self.b_q, dq)
        linear_init_(self.w_k, None, dk)
        linear_init_(self.w_v, self.b_v, dk)
        linear_init_(self.w_o, self.b_o, h * dh)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor, with_mean: bool = False
    ):
        """-> out (B, G, Dout); with ``with_mean`` also the keys' masked mean (B, G, Dk)
        (``attend_and_mean``: one more row of the pooling matmul)."""
        single = keys.dim() == 3
        if single:
            keys, mask = keys.unsqueeze(1), mask.unsqueeze(1)
        b, g, n, dk = keys.shape
        h, dh = self.cfg.n_heads, self.cfg.head_dim
        if query.dim() == 2:
            q = torch.einsum("bq,gqe->bge", query, self.w_q)
        else:
            q = torch.einsum("bgq,gqe->bge", query, self.w_q)
        q = (q + self.b_q).view(b, g, h, dh) * dh**-0.5
        qk = torch.einsum("bghe,ghde->bghd", q, self.w_k)  # (B, G, H, Dk)

        x = keys.reshape(b * g, n, dk)
        pooled, mean = attend_and_mean(qk.reshape(b * g, h, dk), x, mask.reshape(b * g, n))
        pooled = pooled.view(b, g, h, dk)
        v = torch.einsum("bghd,ghde->bghe", pooled, self.w_v) + self.b_v
        out = torch.einsum("bgf,gfo->bgo", v.reshape(b, g, h * dh), self.w_o) + self.b_o
        out = out * mask.any(dim=-1, keepdim=True).to(out.dtype)
        if single:
            out, mean = out.squeeze(1), mean.view(b, dk)
        else:
            mean = mean.view(b, g, dk)
        return (out, mean) if with_mean else out


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over real items. x (..., L, D), mask bool (..., L) -> ((..., D), count (...,)).

    An empty sequence gives zeros (and count 0), never NaN.
    """
    m = mask.to(x.dtype)
    count = m.sum(dim=-1)
    total = torch.einsum("...ld,...l->...d", x, m)
    return total / count.clamp(min=1.0).unsqueeze(-1), count


__all__ = [
    "MLP",
    "HashedEmbedding",
    "HashedEmbeddingConfig",
    "MLPConfig",
    "TargetAttention",
    "TargetAttentionConfig",
    "hash_ids",
    "linear_init_",
    "lookup",
    "make_activation",
    "masked_mean",
]
