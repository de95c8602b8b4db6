"""DeepCTR-Torch, the established library the ablation and ContentCTR's baselines come
from: its import (kept off stdout), and its PLE as a ranking model on our inputs.

``DeepCtrPleRanker`` is DeepCTR-Torch 0.3.0's ``PLE`` with the same widths as ours (d,
experts per level, levels, expert and tower widths, one task per label) reading the same
``RankingInputs``: hashed user / room / author ids (our hash and salts, so both models see
the same collisions), hour / weekday / page, the room's real-time features, the user's
aggregates and the room's content embedding as dense columns, and per GSU its item,
author and category as ``VarLenSparseFeat`` sequences mean-pooled over the real items
(DeepCTR masks id 0, our padding). No target attention and no alignment loss: that is
what the Cross side adds. It plugs into ``StreamTrainer`` like ``MomentCrossModel``:
``forward`` returns logits (B, T), ``forward_train`` (logits, 0).

Two changes to the library's model, both to run it as it was meant to:
- its output layers return logits (``PredictionLayer.task = "regression"`` keeps the
  bias and skips the sigmoid), because our stream losses work in logit space (the slow
  PU correction is −z);
- DeepCTR-Torch 0.3.0 builds ``specific_expert_num`` shared experts per level instead of
  ``shared_expert_num``; with 2 shared and 1 specific its forward fails, so the shared
  experts are rebuilt with the right count (the library's own ``DNN``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading

import torch
from torch import nn

from ml.models.blocks import hash_ids
from ml.models.inputs import N_PAGE_CODES, RankingInputs
from ml.models.ranking import MomentCrossConfig

# Salts of our hashed tables (ml.models.ranking), so a DeepCTR table row is our row.
_SALTS = {"user_id": 1, "room_id": 2, "author_id": 3, "seq_item": 4, "seq_author": 5}


def import_deepctr():
    """``deepctr_torch``, imported with its online version check kept off stdout (the
    check's thread is joined, bounded, so nothing prints later)."""
    with contextlib.redirect_stdout(sys.stderr):
        before = set(threading.enumerate())
        import deepctr_torch
        import deepctr_torch.inputs
        import deepctr_torch.layers
        import deepctr_torch.models

        for t in set(threading.enumerate()) - before:
            t.join(timeout=10)
    return deepctr_torch


def _rows(cfg: MomentCrossConfig, field: str) -> int:
    return {
        "user_id": cfg.user_rows, "room_id": cfg.room_rows, "author_id": cfg.author_rows,
        "seq_item": cfg.item_rows, "seq_author": cfg.seq_author_rows,
    }[field]  # fmt: skip


class DeepCtrPleRanker(nn.Module):
    """RankingInputs -> logits (B, T) through DeepCTR-Torch's PLE (module docstring)."""

    def __init__(self, cfg: MomentCrossConfig, seed: int = 0, device: str = "cpu"):
        super().__init__()
        self.cfg = cfg
        lib = import_deepctr()
        SparseFeat, DenseFeat = lib.inputs.SparseFeat, lib.inputs.DenseFeat
        VarLenSparseFeat = lib.inputs.VarLenSparseFeat
        d = cfg.d
        seq_fields = (("item", cfg.item_rows), ("author", cfg.seq_author_rows))
        columns = [
            SparseFeat("user", cfg.user_rows, d), SparseFeat("room", cfg.room_rows, d),
            SparseFeat("author", cfg.author_rows, d), SparseFeat("hour", 24, d),
            SparseFeat("weekday", 7, d), SparseFeat("page", N_PAGE_CODES, d),
            DenseFeat("room_feats", cfg.f_room), DenseFeat("user_feats", cfg.f_user),
            DenseFeat("room_content", cfg.content_dim),
        ] + [
            VarLenSparseFeat(SparseFeat(f"{gsu}_{f}", rows, d, embedding_name=f"seq_{f}"),
                             cfg.seq_len, combiner="mean")
            for gsu in cfg.gsus for f, rows in (*seq_fields, ("category", cfg.n_categories))
        ]  # fmt: skip
        dims = list(cfg.expert_dims)
        ple = lib.models.PLE(
            columns, shared_expert_num=cfg.n_shared, specific_expert_num=cfg.n_specific,
            num_levels=cfg.levels, expert_dnn_hidden_units=dims, gate_dnn_hidden_units=(),
            tower_dnn_hidden_units=list(cfg.tower_dims), l2_reg_linear=0, l2_reg_embedding=0,
            task_types=["binary"] * cfg.n_tasks, task_names=list(cfg.tasks), seed=seed,
            device=device,
        )  # fmt: skip
        ple.shared_experts = nn.ModuleList(
            nn.ModuleList([nn.ModuleList(
                lib.layers.DNN(ple.input_dim if lv == 0 else dims[-1], dims, device=device)
                for _ in range(cfg.n_shared))])
            for lv in range(cfg.levels)
        ).to(device)  # fmt: skip
        for out in ple.out:
            out.task = "regression"  # logits (the bias kept, no sigmoid)
        self.ple = ple
        self.order = list(ple.feature_index)  # DeepCTR reads its columns in this order
        self.width = max(b for _, b in ple.feature_index.values())

    # ---- the loader's interface (as MomentCrossModel's) --------------------------------
    def table_rows(self, field: str, ids: torch.Tensor) -> torch.Tensor:
        """Rows of ``ids`` of one id field in its hashed table (our hash, our salts)."""
        return hash_ids(ids, _rows(self.cfg, field), _SALTS[field])

    def hash_ids(self, x: RankingInputs) -> RankingInputs:
        if x.hashed:
            return x
        rows = {f: self.table_rows(f, getattr(x, f)) for f in _SALTS}
        return dataclasses.replace(x, **rows, hashed=True)

    def columns(self, x: RankingInputs) -> torch.Tensor:
        """DeepCTR's X (B, width): every feature's columns at its ``feature_index``; ids
        as floats (exact: every table has fewer than 2^24 rows)."""
        cfg = self.cfg
        x = self.hash_ids(x)
        cat = torch.where(x.seq_category > 0, (x.seq_category - 1) % (cfg.n_categories - 1) + 1, 0)
        cols = {
            "user": x.user_id, "room": x.room_id, "author": x.author_id,
            "hour": x.context[:, 0], "weekday": x.context[:, 1], "page": x.context[:, 2],
            "room_feats": x.room_feats, "user_feats": x.user_feats,
            "room_content": x.content_table[x.room_row],
        }  # fmt: skip
        item = torch.where(x.seq_mask, x.seq_item, 0)  # padding is id 0: DeepCTR masks it
        author = torch.where(x.seq_mask, x.seq_author, 0)
        for i, gsu in enumerate(cfg.gsus):
            cols[f"{gsu}_item"] = item[:, i]
            cols[f"{gsu}_author"] = author[:, i]
            cols[f"{gsu}_category"] = torch.where(x.seq_mask[:, i], cat[:, i], 0)
        b = x.batch_size
        return torch.cat([cols[name].reshape(b, -1).float() for name in self.order], dim=1)

    def forward(self, x: RankingInputs) -> torch.Tensor:
        """-> logits (B, T), tasks in ``cfg.tasks`` order."""
        return self.ple(self.columns(x))

    def forward_train(self, x: RankingInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logits (B, T), 0): no alignment loss."""
        logits = self.forward(x)
        return logits, logits.new_zeros(())
