"""When the log system receives each event: jitter, late reports, at-least-once duplicates."""

from __future__ import annotations

import numpy as np

from ml.hours import HOUR_MS
from ml.sim.config import REPORTING, SimConfig, rng
from ml.sim.events import Events


def deliver(cfg: SimConfig, ev: Events, domain_index: int, hour_index: int) -> Events:
    """Set report times in place; return the re-deliveries (same event, later report)."""
    g = rng(cfg.seed, REPORTING, hour_index, domain_index)
    n = len(ev)
    jitter = np.clip(
        g.lognormal(np.log(cfg.report_jitter_median_ms), cfg.report_jitter_sigma, n), 50, 15_000
    )
    late = g.random(n) < cfg.late_rate
    delay = g.uniform(cfg.late_min_s * 1000, cfg.late_max_s * 1000, n)
    ev.rtime = ev.etime + jitter.astype(np.int64) + np.where(late, delay, 0).astype(np.int64)
    dup = np.flatnonzero(g.random(n) < cfg.dup_rate)
    # log-uniform gap: most re-deliveries come within a minute, a few after ~10
    gap = np.exp(g.uniform(np.log(cfg.dup_min_s * 1000), np.log(cfg.dup_max_s * 1000), len(dup)))
    dups = ev.take(dup)
    dups.rtime = dups.rtime + gap.astype(np.int64)
    return dups


def split_by_report_hour(ev: Events, start_ms: int, hours: int) -> list[tuple[int, Events]]:
    """[(report hour index, events)] for report hours inside the window; later ones have
    not arrived yet and are dropped."""
    j = (ev.rtime - start_ms) // HOUR_MS
    inside = np.flatnonzero((j >= 0) & (j < hours))
    if len(inside) == 0:
        return []
    order = inside[np.argsort(j[inside], kind="stable")]
    cuts = np.flatnonzero(np.diff(j[order])) + 1
    return [(int(j[c[0]]), ev.take(c)) for c in np.split(order, cuts)]
