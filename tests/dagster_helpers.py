"""Shared helpers of the Dagster-level tests: resources, check outcomes, and running one
partitioned check against the lake as it is."""

import dagster as dg

from assets.definitions import defs
from assets.partitions import hourly_partitions
from resources.storage import LakeStorage, LandingZone

ASSETS, CHECKS = list(defs.assets), list(defs.asset_checks)


def resources(root: str) -> dict:
    storage = LakeStorage(root=root)
    return {"storage": storage, "landing": LandingZone(storage=storage)}


def evaluations(result) -> dict[str, bool]:
    """'asset:check' -> passed, for every check evaluated in a run."""
    return {
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:{e.asset_check_evaluation_data.check_name}": e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


@dg.asset(partitions_def=hourly_partitions)
def partition_anchor():
    """Does nothing: gives a checks-only job its hourly partitions (Dagster needs an asset)."""
    return dg.MaterializeResult()


def run_check(root: str, asset: str, check: str, key: str) -> bool:
    """Run one partitioned check against the lake as it is, without re-running its asset."""
    sel = dg.AssetSelection.checks(
        dg.AssetCheckKey(dg.AssetKey(asset), check)
    ) | dg.AssetSelection.assets(partition_anchor)
    r = dg.materialize(
        [*ASSETS, partition_anchor, *CHECKS],
        selection=sel,
        partition_key=key,
        resources=resources(root),
        raise_on_error=False,
    )
    return evaluations(r)[f"{asset}:{check}"]
