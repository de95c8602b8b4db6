"""A small simulated lake through the real data layer (Dagster), for the model-stage tests."""

from __future__ import annotations

import dagster as dg

from assets.definitions import HOURLY_ASSET_NAMES
from ml.hours import HOUR_MS, parse_hour, partition_key
from ml.io.store import Store
from ml.sim import SimConfig, simulate
from tests.dagster_helpers import ASSETS, CHECKS, resources

H0 = parse_hour("2026-01-01-00:00")


def hour_keys(hours: int) -> list[str]:
    return [partition_key(H0 + i * HOUR_MS) for i in range(hours)]


def pipeline_lake(root: str, hours: int, users: int, seed: int, outcomes: int = 0) -> Store:
    """Simulate ``hours`` hours and materialize every hourly data asset of each, its
    catalog included (and live_outcomes of the first ``outcomes`` hours) through Dagster."""
    simulate(SimConfig(hours=hours, users=users, seed=seed), root, progress=False)
    res = resources(root)
    defs = ASSETS + CHECKS
    for key in hour_keys(hours):  # HOURLY_ASSET_NAMES includes content_catalog of the hour
        assert dg.materialize(
            defs, selection=dg.AssetSelection.assets(*HOURLY_ASSET_NAMES), partition_key=key,
            resources=res,
        ).success  # fmt: skip
    for key in hour_keys(outcomes):
        assert dg.materialize(
            defs, selection=dg.AssetSelection.assets("live_outcomes"), partition_key=key,
            resources=res,
        ).success  # fmt: skip
    return Store(root)
