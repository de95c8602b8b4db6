"""The Moment & Cross ranking model (DESIGN §7.2-7.3).

inputs -> embeddings -> [GSU items -> ESU target attention] -> PLE | MMoE -> one tower per
task -> logits (B, T). B = batch, G = len(GSUS), L = sequence length, d = embedding width,
T = len(TASKS). The label streams' losses live in ``ml.models.losses``; the model only emits
logits and, for training, the Cross alignment loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ml.models.blocks import (
    HashedEmbedding,
    HashedEmbeddingConfig,
    TargetAttention,
    TargetAttentionConfig,
)
from ml.models.experts import PLE, BatchedExperts, BatchedExpertsConfig, MMoE, MMoEConfig, PLEConfig
from ml.models.gather import lookup, lookup_sum
from ml.models.inputs import N_CONTEXT, N_GAP_BUCKETS, N_PAGE_CODES, RankingInputs
from ml.models.losses import info_nce
from ml.schema import EMBED_DIM, GSUS, N_ACTION_CODES, TASKS

# Id fields of RankingInputs and the hashed table each one reads (salts differ per table).
ID_TABLES = {
    "user_id": "user", "room_id": "room", "author_id": "author",
    "seq_item": "seq_item", "seq_author": "seq_author",
}  # fmt: skip
MODEL_FAMILIES = ("moment_cross", "deepctr_ple")
# Context vocabularies: hour of day, day of week, page code (0 = unknown).
_CONTEXT_SIZES = (24, 7, N_PAGE_CODES)


@dataclass(frozen=True)
class MomentCrossConfig:
    # Hashed id tables (rows; row 0 is reserved for id 0).
    user_rows: int = 1 << 16
    room_rows: int = 1 << 14
    author_rows: int = 1 << 14
    item_rows: int = 1 << 18  # GSU items of both domains
    seq_author_rows: int = 1 << 15
    n_categories: int = 64  # category + 1, folded into [1, n_categories); 0 = pad/unknown
    d: int = 16
    n_heads: int = 2
    content_dim: int = EMBED_DIM
    f_room: int = 12
    f_user: int = 8
    seq_len: int = 50
    gsus: tuple[str, ...] = GSUS
    mixed_gsu: str = "long_view"  # the alignment anchor
    use_cross: bool = True  # False: no GSU/ESU branch and no alignment loss at all
    use_realtime: bool = True  # False: room_feats are not read
    backbone: str = "ple"  # "ple" | "mmoe"
    # "moment_cross": this module's model; "deepctr_ple": DeepCTR-Torch's PLE on the same
    # inputs, sequences mean-pooled (ml.models.deepctr), the ablation's external baseline
    family: str = "moment_cross"
    n_shared: int = 2  # PLE shared experts per level
    n_specific: int = 1  # PLE experts per task per level
    levels: int = 2  # PLE extraction levels
    mmoe_experts: int = 4
    expert_dims: tuple[int, ...] = (128, 64)
    tower_dims: tuple[int, ...] = (32,)
    tasks: tuple[str, ...] = TASKS
    alphas: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)  # ranking score exponents
    tau: float = 0.1  # InfoNCE temperature
    align_weight: float = 0.1  # the trainer's weight on align_loss (the model does not use it)
    dropout: float = 0.0
    activation: str = "relu"
    prior_rates: tuple[float, ...] | None = None  # initial tower output bias = logit(rate)

    def __post_init__(self):
        if len(self.alphas) != len(self.tasks):
            raise ValueError("one alpha per task")
        if self.prior_rates is not None and len(self.prior_rates) != len(self.tasks):
            raise ValueError("one prior rate per task")
        if self.mixed_gsu not in self.gsus:
            raise ValueError(f"mixed_gsu {self.mixed_gsu!r} not in {self.gsus}")
        if self.backbone not in ("ple", "mmoe"):
            raise ValueError(f"backbone must be 'ple' or 'mmoe', not {self.backbone!r}")
        if self.family not in MODEL_FAMILIES:
            raise ValueError(f"family must be one of {MODEL_FAMILIES}, not {self.family!r}")
        if self.n_categories < 2:
            raise ValueError("n_categories must be >= 2")

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def backbone_in_dim(self) -> int:
        n_vec = 3 + N_CONTEXT + 1 + (len(self.gsus) if self.use_cross else 0)
        return n_vec * self.d + (self.f_room if self.use_realtime else 0) + self.f_user


def ranking_score(probs: torch.Tensor, alphas: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Π_k (1 + p_k)^{α_k}: probs (B, T) -> (B,), computed as exp(Σ α_k log1p(p_k))."""
    a = torch.as_tensor(alphas, dtype=probs.dtype, device=probs.device)
    return torch.exp((torch.log1p(probs) * a).sum(dim=-1))


class MomentCrossModel(nn.Module):
    """RankingInputs -> logits (B, T); ``forward_train`` adds the Cross alignment loss."""

    def __init__(self, cfg: MomentCrossConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d

        def hashed(rows: int, salt: int) -> HashedEmbedding:
            return HashedEmbedding(HashedEmbeddingConfig(rows, d, salt=salt))

        self.user = hashed(cfg.user_rows, 1)
        self.room = hashed(cfg.room_rows, 2)
        self.author = hashed(cfg.author_rows, 3)
        # The three context vocabularies share one table (offsets), one lookup per batch.
        self.context = nn.Embedding(sum(_CONTEXT_SIZES), d)
        nn.init.normal_(self.context.weight, std=0.05)
        self.register_buffer("context_offset", _offsets(_CONTEXT_SIZES), persistent=False)
        self.register_buffer(
            "context_max", torch.tensor([s - 1 for s in _CONTEXT_SIZES]), persistent=False
        )
        # No bias: the all-zero padding row of content_table must project to zero.
        self.content_proj = nn.Linear(cfg.content_dim, d, bias=False)

        if cfg.use_cross:
            self.seq_item = hashed(cfg.item_rows, 4)
            self.seq_author = hashed(cfg.seq_author_rows, 5)
            # Summing per-field embeddings is as expressive as concat -> linear (a linear map
            # of a looked-up row is just another table) at a fraction of the memory traffic.
            small = (cfg.n_categories, N_GAP_BUCKETS, N_ACTION_CODES)
            self.seq_small = nn.Embedding(sum(small), d)
            nn.init.normal_(self.seq_small.weight, std=0.05)
            _, self._gap_start, self._action_start = _offsets(small).tolist()
            self.esu = TargetAttention(
                TargetAttentionConfig(
                    d_query=d, d_key=d, n_heads=cfg.n_heads, n_groups=len(cfg.gsus)
                )
            )
            mix = cfg.gsus.index(cfg.mixed_gsu)
            self.mixed_index = mix
            self.register_buffer(
                "other_index",
                torch.tensor([i for i in range(len(cfg.gsus)) if i != mix]),
                persistent=False,
            )

        common = dict(
            in_dim=cfg.backbone_in_dim,
            n_tasks=cfg.n_tasks,
            expert_dims=cfg.expert_dims,
            activation=cfg.activation,
            dropout=cfg.dropout,
        )
        if cfg.backbone == "ple":
            self.backbone = PLE(
                PLEConfig(
                    n_shared=cfg.n_shared, n_specific=cfg.n_specific, levels=cfg.levels, **common
                )
            )
        else:
            self.backbone = MMoE(MMoEConfig(n_experts=cfg.mmoe_experts, **common))
        # The T towers are T experts fed one representation each: one batched MLP.
        self.towers = BatchedExperts(
            BatchedExpertsConfig(
                n_experts=cfg.n_tasks,
                in_dim=self.backbone.out_dim,
                dims=(*cfg.tower_dims, 1),
                activation=cfg.activation,
                dropout=cfg.dropout,
                final_activation=False,
            )
        )
        if cfg.prior_rates is not None:
            with torch.no_grad():
                p = torch.tensor(cfg.prior_rates).clamp(1e-6, 1 - 1e-6)
                self.towers.biases[-1].copy_(torch.logit(p).unsqueeze(1))

    # ---- encoders ----------------------------------------------------------------------

    def _content(self, table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Projected content of ``rows`` (any shape S) -> (*S, d)."""
        if table.shape[0] <= rows.numel():  # cheaper to project the catalog once
            return lookup(self.content_proj(table), rows)
        return self.content_proj(lookup(table, rows))

    def hash_ids(self, x: RankingInputs) -> RankingInputs:
        """``x`` with its id fields replaced by table rows (``hashed=True``). Loaders call
        it once per exposure; the model then skips hashing on every step."""
        if x.hashed:
            return x
        rows = {f: self.table_rows(f, getattr(x, f)) for f in ID_TABLES}
        return dataclasses.replace(x, **rows, hashed=True)

    def table_rows(self, field: str, ids: torch.Tensor) -> torch.Tensor:
        """Rows of ``ids`` of one id field (``_ID_TABLES``) in its hashed table."""
        table = getattr(self, ID_TABLES[field], None)
        if table is None:  # sequences off: nothing reads them
            return torch.zeros_like(ids)
        return table.rows(ids)

    def _embed(self, field: str, x: RankingInputs, positions: torch.Tensor | None = None):
        table = getattr(self, ID_TABLES[field])
        ids = getattr(x, field).reshape(-1) if positions is not None else getattr(x, field)
        if positions is not None:
            ids = ids.index_select(0, positions)
        return lookup(table.weight, ids) if x.hashed else table(ids)  # raw: hash here

    def _gsu_items(self, x: RankingInputs) -> torch.Tensor:
        """GSU item representations (B, G, L, d); padded positions are exactly zero.

        The item-level part (item, author, category, content) is computed once per
        distinct item of the batch and gathered: the five GSUs and the users of a batch
        repeat the same items many times over. Padding is one more "item" whose row is
        zero, and a zero row of the (gap x action) table, so the gathers write the padded
        layout directly, with no scatter into zeros: padded positions cannot reach the
        attention, the means or the gradients, whatever their ids hold.
        """
        cfg = self.cfg
        mask = x.seq_mask.reshape(-1)
        cat = x.seq_category.reshape(-1)
        # Fold unseen category codes into range but keep 0 (pad/unknown) apart.
        cat = torch.where(cat > 0, (cat - 1) % (cfg.n_categories - 1) + 1, 0)
        item, author, row = (t.reshape(-1) for t in (x.seq_item, x.seq_author, x.seq_row))
        n_rows = x.content_table.shape[0]
        w = self.seq_small.weight
        first, inverse = _distinct_items(
            mask, (item, cfg.item_rows), (author, cfg.seq_author_rows),
            (cat, cfg.n_categories), (row, n_rows),
        )  # fmt: skip
        if first is not None:
            item, author, cat, row = (t.index_select(0, first) for t in (item, author, cat, row))
            real = mask.index_select(0, first)
        else:  # every position computed, as it comes
            real = mask
        per_item = lookup(self.seq_item.weight, item) + lookup(self.seq_author.weight, author)
        per_item = per_item + lookup(w, cat) + self._content(x.content_table, row)
        per_item = per_item * real.unsqueeze(1).to(per_item.dtype)  # padding's row: zero
        # Gap and action together: one lookup in their (gap x action) table of sums, not
        # two over every position (the table has 24 x 32 rows; positions are ~10^5), with
        # one zero row more for padding.
        gap0, act0 = self._gap_start, self._action_start
        gap_w, act_w = w[gap0 : gap0 + N_GAP_BUCKETS], w[act0 : act0 + N_ACTION_CODES]
        pair_w = (gap_w.unsqueeze(1) + act_w.unsqueeze(0)).reshape(-1, w.shape[-1])
        pair_w = torch.cat([pair_w, pair_w.new_zeros(1, pair_w.shape[1])])
        gap = x.seq_gap.reshape(-1).clamp(0, N_GAP_BUCKETS - 1)
        act = x.seq_action.reshape(-1).clamp(0, N_ACTION_CODES - 1)
        pair = torch.where(mask, gap * N_ACTION_CODES + act, pair_w.shape[0] - 1)
        if inverse is None:
            v = per_item + lookup(pair_w, pair)
        else:  # one pass: both gathers and their sum (ml.models.gather)
            v = lookup_sum(per_item, inverse, pair_w, pair)
        return v.view(*x.seq_mask.shape, v.shape[-1])

    def _encode(self, x: RankingInputs) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (backbone input (B, backbone_in_dim), GSU item means (B, G, d) or None)."""
        cfg = self.cfg
        b = x.batch_size
        _check_shapes(cfg, x)
        x = self.hash_ids(x)  # a no-op for loader batches (hashed once per exposure)
        user, room, author = (self._embed(f, x) for f in ("user_id", "room_id", "author_id"))
        ctx = torch.minimum(x.context.clamp(min=0), self.context_max) + self.context_offset
        ctx = lookup(self.context.weight, ctx).reshape(b, -1)
        query = room + author + self._content(x.content_table, x.room_row)
        parts = [user, room, author, ctx, query]
        means = None
        if cfg.use_cross:
            items = self._gsu_items(x)
            esu, means = self.esu(query, items, x.seq_mask, with_mean=True)
            parts.append(esu.reshape(b, -1))  # (B, G*d)
        if cfg.use_realtime:
            parts.append(x.room_feats.to(user.dtype))
        parts.append(x.user_feats.to(user.dtype))
        return torch.cat(parts, dim=-1), means

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        reps = self.backbone(h)  # (T, B, D)
        return self.towers(reps).squeeze(-1).transpose(0, 1)  # (B, T)

    # ---- public ------------------------------------------------------------------------

    def forward(self, x: RankingInputs) -> torch.Tensor:
        """-> logits (B, T), tasks in ``cfg.tasks`` order."""
        h, _ = self._encode(x)
        return self._head(h)

    def forward_train(self, x: RankingInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logits (B, T), align_loss scalar; 0 when use_cross is False)."""
        h, means = self._encode(x)
        logits = self._head(h)
        if means is None:
            return logits, logits.new_zeros(())
        return logits, self.align_loss(means, x.seq_mask)

    def align_loss(self, means: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """InfoNCE of L2(mean V_mixed) against L2(mean V_i) for every other GSU i.

        means (B, G, d) of each GSU's real items (the ESU's by-product), mask (B, G, L).
        In each pairing only rows where both sequences have a real item take part; the
        pairings are averaged.
        """
        anchor = means[:, self.mixed_index]
        others = means.index_select(1, self.other_index).transpose(0, 1)  # (K, B, d)
        has = mask.any(-1)  # (B, G)
        valid = has[:, self.mixed_index].unsqueeze(0) & has.index_select(1, self.other_index).T
        return info_nce(anchor, others, self.cfg.tau, valid)

    @torch.no_grad()
    def score(self, x: RankingInputs) -> torch.Tensor:
        """The ranking score (B,) with ``cfg.alphas``."""
        return ranking_score(torch.sigmoid(self.forward(x).float()), self.cfg.alphas)


def _check_shapes(cfg: MomentCrossConfig, x: RankingInputs) -> None:
    # Shape checks only (no data reads, so no device sync): a mismatch would otherwise
    # surface as an opaque matmul error deep in the backbone.
    if x.user_feats.shape[-1] != cfg.f_user:
        raise ValueError(f"user_feats has {x.user_feats.shape[-1]} columns, config {cfg.f_user}")
    if cfg.use_realtime and x.room_feats.shape[-1] != cfg.f_room:
        raise ValueError(f"room_feats has {x.room_feats.shape[-1]} columns, config {cfg.f_room}")
    if x.content_table.shape[-1] != cfg.content_dim:
        raise ValueError(f"content_table width {x.content_table.shape[-1]} != {cfg.content_dim}")
    if cfg.use_cross and tuple(x.seq_mask.shape[1:]) != (len(cfg.gsus), cfg.seq_len):
        raise ValueError(
            f"sequences {tuple(x.seq_mask.shape)} != (B, {len(cfg.gsus)}, {cfg.seq_len})"
        )


def _distinct_items(mask: torch.Tensor, *fields: tuple[torch.Tensor, int]):
    """(a position of each distinct combination, each position's distinct index) of int64
    fields with values in [0, bound), packed into one int64 key; every position where
    ``mask`` is False is one combination of its own (padding). (None, None) when the
    bounds do not fit 62 bits (then every position is computed, as it comes)."""
    span = 1
    for _, bound in fields:
        span *= max(int(bound), 1)
    if span >= 1 << 62:
        return None, None
    key = torch.zeros_like(fields[0][0])
    for t, bound in fields:
        key = key * int(bound) + t
    key = torch.where(mask, key, -1)
    distinct, inverse = torch.unique(key, return_inverse=True)
    first = torch.empty(len(distinct), dtype=torch.long, device=key.device)
    first.scatter_(0, inverse, torch.arange(len(key), device=key.device))  # any occurrence
    return first, inverse


def _offsets(sizes: Sequence[int]) -> torch.Tensor:
    return torch.tensor([sum(sizes[:i]) for i in range(len(sizes))])
