"""Seeded simulator of a live-streaming + short-video platform (DESIGN §4).

It writes the raw logs a Kafka → object-store sink would land (JSON Lines per report
hour, content segments, catalog) and, apart from them, the ground truth (``oracle/``)
that evaluation compares against. Same config and seed, same bytes.

    from ml.sim import SimConfig, simulate
    summary = simulate(SimConfig(hours=4, users=5000, seed=7), "./.livecross")
"""

from ml.sim.config import SimConfig
from ml.sim.run import SimSummary, simulate

__all__ = ["SimConfig", "SimSummary", "simulate"]
