"""Interleaved timing rounds shared by the benchmarks (a helper, not a benchmark: ``make
bench`` runs only the bench/*.py files whose names do not start with an underscore)."""

from __future__ import annotations

import time


def interleaved_rates(jobs, steps: int, warmup: int, repeat: int, sync) -> list[list[float]]:
    """Items/s of each (fn, batches, items_per_call) job in each of ``repeat`` rounds of
    ``steps`` calls ``fn(batch)``: the jobs take turns round by round, so a busy spell of a
    shared machine slows the jobs of one round alike, and the ratio of one round compares
    like with like."""
    for fn, batches, _ in jobs:
        for i in range(warmup):
            fn(batches[i % len(batches)])
    sync()
    per_round = [[] for _ in jobs]
    for _ in range(repeat):
        for j, (fn, batches, items) in enumerate(jobs):
            t = time.perf_counter()
            for i in range(steps):
                fn(batches[i % len(batches)])
            sync()
            per_round[j].append(steps * items / (time.perf_counter() - t))
    return per_round
