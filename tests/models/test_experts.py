"""Batched experts, PLE (the paper's gating, not FuxiCTR's) and MMoE."""

import pytest
import torch
from torch import nn

from ml.models.experts import (
    PLE,
    BatchedExperts,
    BatchedExpertsConfig,
    MMoE,
    MMoEConfig,
    PLEConfig,
)

T, S, SH = 4, 2, 2  # tasks, specific experts per task, shared experts
B, IN = 8, 10


def _linears(be: BatchedExperts, e: int) -> list[nn.Linear]:
    """Expert e of ``be`` rebuilt as nn.Linear modules from the same weights."""
    out = []
    for w, b in zip(be.weights, be.biases, strict=True):
        lin = nn.Linear(w.shape[1], w.shape[2])
        with torch.no_grad():
            lin.weight.copy_(w[e].T)
            lin.bias.copy_(b[e])
        out.append(lin)
    return out


def _loop(be: BatchedExperts, x: torch.Tensor) -> torch.Tensor:
    res = []
    for e in range(be.cfg.n_experts):
        h = x if x.dim() == 2 else x[e]
        layers = _linears(be, e)
        for i, lin in enumerate(layers):
            h = lin(h)
            if i < len(layers) - 1 or be.cfg.final_activation:
                h = torch.relu(h)
        res.append(h)
    return torch.stack(res)


@pytest.mark.parametrize("dims", [(6,), (12, 6)])
@pytest.mark.parametrize("final_activation", [True, False])
def test_batched_experts_equal_a_loop_of_linears(dims, final_activation):
    torch.manual_seed(0)
    be = BatchedExperts(BatchedExpertsConfig(5, IN, dims, final_activation=final_activation))
    shared = torch.randn(B, IN)
    per_expert = torch.randn(5, B, IN)
    assert be(shared).shape == (5, B, dims[-1])
    torch.testing.assert_close(be(shared), _loop(be, shared))
    torch.testing.assert_close(be(per_expert), _loop(be, per_expert))


def _ple(levels=2, seed=0) -> PLE:
    torch.manual_seed(seed)
    return PLE(
        PLEConfig(IN, n_tasks=T, n_shared=SH, n_specific=S, expert_dims=(12, 6), levels=levels)
    )


def test_ple_shapes_and_gate_widths():
    ple = _ple(levels=3)
    x = torch.randn(B, IN)
    assert ple(x).shape == (T, B, 6)
    outs = ple.forward_levels(x)
    assert [o.shape for o in outs] == [(T + 1, B, 6), (T + 1, B, 6), (T, B, 6)]
    n_all = T * S + SH
    for i, lv in enumerate(ple.levels):
        assert lv.experts.cfg.n_experts == n_all
        assert lv.task_gate_w.shape == (T, IN if i == 0 else 6, S + SH)
        if i < 2:
            assert lv.shared_gate.out_features == n_all
        else:
            assert lv.shared_gate is None
    gates = ple.gate_expert_indices()
    shared = tuple(range(T * S, n_all))
    for i, g in enumerate(gates):
        assert g["shared"] == (tuple(range(n_all)) if i < 2 else None)
        for t, idx in enumerate(g["tasks"]):
            assert idx == (*range(t * S, (t + 1) * S), *shared)


def _task_expert_params(level, task):
    """The weight slices of ``task``'s specific experts at ``level``."""
    return [(w, slice(task * S, (task + 1) * S)) for w in level.experts.weights]


def test_ple_level0_task_gate_sees_only_own_and_shared_experts():
    ple = _ple()
    x = torch.randn(B, IN)
    base = ple.forward_levels(x)
    with torch.no_grad():
        for w, sl in _task_expert_params(ple.levels[0], 2):
            w[sl] += 0.5
    new = ple.forward_levels(x)
    for t in range(T):
        if t == 2:
            assert not torch.allclose(new[0][t], base[0][t])
        else:  # another task's experts never reach a task gate
            assert torch.equal(new[0][t], base[0][t])
    # The shared gate mixes every expert, task 2's included (FuxiCTR's would not).
    assert not torch.allclose(new[0][T], base[0][T])
    # ... so at the next level task 1 changes, through the shared representation.
    assert not torch.allclose(new[1][1], base[1][1])


def test_ple_task_reaches_other_tasks_only_through_the_shared_path():
    ple = _ple()
    last = ple.levels[1]
    h = torch.randn(T + 1, B, 6)  # level 1 reads the 6-wide level-0 outputs
    base = last(h)
    moved_task2 = h.clone()
    moved_task2[2] += 1.0
    out = last(moved_task2)
    assert torch.equal(out[1], base[1]) and torch.equal(out[0], base[0])
    assert not torch.allclose(out[2], base[2])
    moved_shared = h.clone()
    moved_shared[T] += 1.0
    out = last(moved_shared)
    assert all(not torch.allclose(out[t], base[t]) for t in range(T))


def test_ple_experts_above_level0_read_their_own_task_input():
    ple = _ple()
    last = ple.levels[1]
    with torch.no_grad():  # input-independent gates: only the experts read the inputs
        last.task_gate_w.zero_()
    h = torch.randn(T + 1, B, 6)
    moved = h.clone()
    moved[2] += 1.0
    out, new = last(h), last(moved)
    assert not torch.allclose(out[2], new[2])  # task 2's experts read row 2
    assert torch.equal(out[1], new[1])


def test_ple_gradients_follow_the_gates():
    ple = _ple()
    x = torch.randn(B, IN)
    lv0 = ple.levels[0]
    out = lv0(x)
    w0 = lv0.experts.weights[0]
    (g_task1,) = torch.autograd.grad(out[1].sum(), w0, retain_graph=True)
    (g_shared,) = torch.autograd.grad(out[T].sum(), w0)
    own = set(range(1 * S, 2 * S)) | set(range(T * S, T * S + SH))
    for e in range(T * S + SH):
        touched = bool(g_task1[e].abs().sum() > 0)
        assert touched == (e in own), e
        assert g_shared[e].abs().sum() > 0  # the shared gate reaches every expert


def test_single_level_ple_is_a_cgc_without_shared_gate():
    ple = _ple(levels=1)
    assert ple.levels[0].shared_gate is None
    assert ple(torch.randn(B, IN)).shape == (T, B, 6)


def test_mmoe_shapes_and_every_gate_sees_every_expert():
    torch.manual_seed(0)
    m = MMoE(MMoEConfig(IN, n_tasks=T, n_experts=3, expert_dims=(12, 6)))
    x = torch.randn(B, IN)
    out = m(x)
    assert out.shape == (T, B, 6)
    assert m.gate_expert_indices()[0]["tasks"] == [(0, 1, 2)] * T
    (g,) = torch.autograd.grad(out[0].sum(), m.experts.weights[0])
    assert all(g[e].abs().sum() > 0 for e in range(3))
    # A gate mixes with weights that sum to 1: equal experts give the expert itself.
    with torch.no_grad():
        for w, b in zip(m.experts.weights, m.experts.biases, strict=True):
            w[:] = w[0]
            b[:] = b[0]
    torch.testing.assert_close(m(x)[2], m.experts(x)[0])
