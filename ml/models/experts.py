"""Multi-task backbones: batched experts, PLE (Tang et al. 2020) and MMoE (Ma et al. 2018).

T = tasks, E = experts of one level, B = batch, D = expert output width. Every level's
experts are one (E, in, out) parameter per layer, run in one matmul: a Python loop over
E small nn.Linear modules would be E kernel launches per layer, forward and backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ml.models.blocks import linear_init_, make_activation


@dataclass(frozen=True)
class BatchedExpertsConfig:
    n_experts: int
    in_dim: int
    dims: tuple[int, ...]  # output width of every layer (1 or 2 layers typically)
    activation: str = "relu"
    dropout: float = 0.0
    final_activation: bool = True  # False when the last layer emits logits (task towers)


class BatchedExperts(nn.Module):
    """E independent MLPs with stacked weights.

    x shared (B, in) or per expert (E, B, in) -> (E, B, dims[-1]).
    Expert e, layer i is exactly ``x @ weights[i][e] + biases[i][e]`` (an nn.Linear with
    weight ``weights[i][e].T``).
    """

    def __init__(self, cfg: BatchedExpertsConfig):
        super().__init__()
        if not cfg.dims:
            raise ValueError("BatchedExperts needs at least one layer")
        self.cfg = cfg
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        d = cfg.in_dim
        for out in cfg.dims:
            w = nn.Parameter(torch.empty(cfg.n_experts, d, out))
            b = nn.Parameter(torch.empty(cfg.n_experts, out))
            linear_init_(w, b, d)
            self.weights.append(w)
            self.biases.append(b)
            d = out
        self.out_dim = d
        self.act = make_activation(cfg.activation)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if x.dim() == 2:  # shared input: one (B, in) @ (in, E*out) GEMM
                x = torch.einsum("bi,eio->ebo", x, w) + b.unsqueeze(1)
            else:
                x = torch.baddbmm(b.unsqueeze(1), x, w)
            if i < n - 1 or self.cfg.final_activation:
                x = self.drop(self.act(x))
        return x


def _gate_linear(n_gates: int, in_dim: int, width: int) -> tuple[nn.Parameter, nn.Parameter]:
    w = nn.Parameter(torch.empty(n_gates, in_dim, width))
    b = nn.Parameter(torch.empty(n_gates, width))
    linear_init_(w, b, in_dim)
    return w, b


def _mix(gates: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Σ_k gates[..., k, b] · experts[..., k, b, :]: gates (..., K, B), experts (..., K, B, D).

    A broadcast multiply and a sum: as an einsum this is B*T tiny (1 x K) @ (K x D) matmuls.
    """
    return (gates.unsqueeze(-1) * experts).sum(dim=-3)


# ---- PLE ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PLEConfig:
    in_dim: int
    n_tasks: int = 6
    n_shared: int = 2
    n_specific: int = 1
    expert_dims: tuple[int, ...] = (128, 64)
    levels: int = 2
    activation: str = "relu"
    dropout: float = 0.0


class PLELevel(nn.Module):
    """One extraction level (a CGC). Experts 0..T*S-1 are task-specific (task t owns
    t*S .. t*S+S-1), the last n_shared are shared.

    x: (B, in) at level 0 (every expert and gate reads the input), else (T+1, B, in) =
    the previous level's task representations then its shared one.
    -> (T+1, B, D) at a non-last level (with the shared gate's mix), (T, B, D) at the last.
    """

    def __init__(self, cfg: PLEConfig, in_dim: int, last: bool):
        super().__init__()
        t, s, sh = cfg.n_tasks, cfg.n_specific, cfg.n_shared
        self.n_tasks, self.n_experts, self.last = t, t * s + sh, last
        self.experts = BatchedExperts(
            BatchedExpertsConfig(
                self.n_experts, in_dim, cfg.expert_dims, cfg.activation, cfg.dropout
            )
        )
        shared = list(range(t * s, t * s + sh))
        task_idx = [list(range(k * s, (k + 1) * s)) + shared for k in range(t)]
        # Which input row (task k or shared = T) each expert reads above level 0.
        group = [k for k in range(t) for _ in range(s)] + [t] * sh
        self.register_buffer("task_idx", torch.tensor(task_idx, dtype=torch.long), False)
        self.register_buffer("expert_group", torch.tensor(group, dtype=torch.long), False)
        self.task_gate_w, self.task_gate_b = _gate_linear(t, in_dim, s + sh)
        # The paper's shared gate mixes every expert of the level, task-specific ones
        # included (FuxiCTR's mixes only the shared experts; we do not copy that).
        self.shared_gate = None if last else nn.Linear(in_dim, self.n_experts)

    def gate_expert_indices(self) -> dict[str, list[tuple[int, ...]] | tuple[int, ...] | None]:
        """Expert indices each gate mixes: {"tasks": [per task], "shared": all or None}."""
        tasks = [tuple(r) for r in self.task_idx.tolist()]
        shared = None if self.shared_gate is None else tuple(range(self.n_experts))
        return {"tasks": tasks, "shared": shared}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.n_tasks
        if x.dim() == 2:
            out = self.experts(x)
            logits = torch.einsum("bi,tik->tbk", x, self.task_gate_w)
            shared_in = x
        else:
            out = self.experts(x.index_select(0, self.expert_group))
            logits = torch.einsum("tbi,tik->tbk", x[:t], self.task_gate_w)
            shared_in = x[t]
        gates = torch.softmax(logits + self.task_gate_b.unsqueeze(1), dim=-1)  # (T, B, K)
        picked = out.index_select(0, self.task_idx.reshape(-1)).view(t, -1, *out.shape[1:])
        tasks = _mix(gates.transpose(1, 2), picked)
        if self.shared_gate is None:
            return tasks
        sg = torch.softmax(self.shared_gate(shared_in), dim=-1)  # (B, E)
        shared = _mix(sg.T, out)
        return torch.cat([tasks, shared.unsqueeze(0)], dim=0)


class PLE(nn.Module):
    """Progressive Layered Extraction: x (B, in) -> per-task representations (T, B, D)."""

    def __init__(self, cfg: PLEConfig):
        super().__init__()
        if cfg.levels < 1:
            raise ValueError("PLE needs at least one level")
        self.cfg = cfg
        d = cfg.expert_dims[-1]
        self.levels = nn.ModuleList(
            PLELevel(cfg, cfg.in_dim if i == 0 else d, last=i == cfg.levels - 1)
            for i in range(cfg.levels)
        )
        self.out_dim = d

    def gate_expert_indices(self) -> list[dict]:
        return [lv.gate_expert_indices() for lv in self.levels]

    def forward_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every level's output: (T+1, B, D) for the non-last ones, (T, B, D) last."""
        outs = []
        for lv in self.levels:
            x = lv(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lv in self.levels:
            x = lv(x)
        return x


# ---- MMoE ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MMoEConfig:
    in_dim: int
    n_tasks: int = 6
    n_experts: int = 4
    expert_dims: tuple[int, ...] = (128, 64)
    activation: str = "relu"
    dropout: float = 0.0


class MMoE(nn.Module):
    """Shared experts, one softmax gate per task: x (B, in) -> (T, B, D)."""

    def __init__(self, cfg: MMoEConfig):
        super().__init__()
        self.cfg = cfg
        self.experts = BatchedExperts(
            BatchedExpertsConfig(
                cfg.n_experts, cfg.in_dim, cfg.expert_dims, cfg.activation, cfg.dropout
            )
        )
        self.gate_w, self.gate_b = _gate_linear(cfg.n_tasks, cfg.in_dim, cfg.n_experts)
        self.out_dim = cfg.expert_dims[-1]

    def gate_expert_indices(self) -> list[dict]:
        every = tuple(range(self.cfg.n_experts))
        return [{"tasks": [every] * self.cfg.n_tasks, "shared": None}]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.experts(x)  # (E, B, D)
        logits = torch.einsum("bi,tie->tbe", x, self.gate_w) + self.gate_b.unsqueeze(1)
        return _mix(torch.softmax(logits, dim=-1).transpose(1, 2), out)
