"""The ranking step's hand-made pieces against the torch code they replace, same inputs,
same run, 2 CPU threads (what ``bench/train.py``'s end-to-end figure is made of).

value: rows/s of the embedding backward's row scatter-add (``ml.models.gather.add_rows``,
~180,000 GSU positions of a batch of 1024 into a 20,500-row table, d = 16). peer: torch's
``index_add_`` on the same rows. params: one Adam step over the default model's ~2.2 M
parameters, fused vs per-tensor; the alignment InfoNCE (1024 anchors x 4 pairings,
forward + backward) blocked vs its plain twin; the ESU's pooling core (5 x 1024
sequences of 50, forward + backward) as ``attend_and_mean`` vs its autograd twin (same
forward, means included; they differ in the backward). Best of 5 rounds each.

    python bench/train_kernels.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.models.attention import attend_and_mean, attend_and_mean_reference
from ml.models.gather import scatter_add_rows
from ml.models.losses import info_nce, info_nce_reference
from ml.models.ranking import MomentCrossModel
from ml.train.variants import BASE_MODEL

ROWS, TABLE, D = 182_000, 20_500, 16


def best_ms(fn, reps: int = 10, rounds: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps)
    return best * 1e3


def main() -> None:
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, TABLE, (ROWS,), generator=g)
    grad = torch.randn(ROWS, D, generator=g)
    ours = best_ms(lambda: scatter_add_rows(grad, idx, TABLE))
    peer = best_ms(lambda: torch.zeros(TABLE, D).index_add_(0, idx, grad))
    assert torch.equal(
        scatter_add_rows(grad, idx, TABLE), torch.zeros(TABLE, D).index_add_(0, idx, grad)
    )

    model = MomentCrossModel(BASE_MODEL)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    fused = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    plain = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False)
    adam_fused, adam_plain = best_ms(fused.step), best_ms(plain.step)
    n_params = sum(p.numel() for p in model.parameters())

    # The alignment InfoNCE of a batch: anchor (1024, 16) against 4 other GSUs' means.
    anchor = torch.randn(1024, D, generator=g, requires_grad=True)
    others = torch.randn(4, 1024, D, generator=g, requires_grad=True)
    valid = torch.rand(4, 1024, generator=g) < 0.95
    nce = {
        name: best_ms(lambda fn=fn: fn(anchor, others, 0.1, valid).backward(), reps=5)
        for name, fn in (("blocked", info_nce), ("plain", info_nce_reference))
    }
    # The ESU's pooling of a batch: 5 GSUs x 1024 sequences of 50 items, 2 heads.
    qk = torch.randn(5 * 1024, 2, D, generator=g, requires_grad=True)
    keys = torch.randn(5 * 1024, 50, D, generator=g, requires_grad=True)
    real = torch.rand(5 * 1024, 50, generator=g) < 0.7

    def pooling(fn):
        pooled, mean = fn(qk, keys, real)
        (pooled.sum() + mean.sum()).backward()

    pool = {
        name: best_ms(lambda fn=fn: pooling(fn), reps=5)
        for name, fn in (("fused", attend_and_mean), ("plain", attend_and_mean_reference))
    }

    out = {
        "name": "train_kernels", "value": round(ROWS / ours * 1e3), "unit": "rows/s",
        "peer": "torch_index_add_", "peer_value": round(ROWS / peer * 1e3),
        "ratio": round(peer / ours, 2),
        "params": {
            "scatter_ms": round(ours, 2), "index_add_ms": round(peer, 2), "rows": ROWS,
            "table_rows": TABLE, "d": D,
            "adam_fused_ms": round(adam_fused, 2), "adam_per_tensor_ms": round(adam_plain, 2),
            "adam_ratio": round(adam_plain / adam_fused, 2), "parameters": n_params,
            "info_nce_blocked_ms": round(nce["blocked"], 2),
            "info_nce_plain_ms": round(nce["plain"], 2),
            "attend_and_mean_ms": round(pool["fused"], 2),
            "attend_and_mean_plain_ms": round(pool["plain"], 2),
            "threads": 2, "cpus": os.cpu_count(),
        },
    }  # fmt: skip
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
