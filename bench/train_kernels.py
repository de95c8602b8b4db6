"""The ranking step's hand-made pieces against the torch code they replace, same inputs,
same run, 2 CPU threads (what ``bench/train.py``'s end-to-end figure is made of).

value: rows/s of the embedding backward's row scatter-add (``ml.models.gather.add_rows``,
~180,000 GSU positions of a batch of 1024 into a 20,500-row table, d = 16). peer: torch's
``index_add_`` on the same rows. params: one Adam step over the default model's ~2.2 M
parameters, fused vs per-tensor. Best of 5 rounds each.

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

from ml.models.gather import scatter_add_rows
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

    out = {
        "name": "train_kernels", "value": round(ROWS / ours * 1e3), "unit": "rows/s",
        "peer": "torch_index_add_", "peer_value": round(ROWS / peer * 1e3),
        "ratio": round(peer / ours, 2),
        "params": {
            "scatter_ms": round(ours, 2), "index_add_ms": round(peer, 2), "rows": ROWS,
            "table_rows": TABLE, "d": D,
            "adam_fused_ms": round(adam_fused, 2), "adam_per_tensor_ms": round(adam_plain, 2),
            "adam_ratio": round(adam_plain / adam_fused, 2), "parameters": n_params,
            "threads": 2, "cpus": os.cpu_count(),
        },
    }  # fmt: skip
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
