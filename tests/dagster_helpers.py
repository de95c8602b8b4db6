"""Shared helpers of the Dagster-level tests: resources, check outcomes, running one
partitioned check against the lake as it is, and breaking a published partition for a while."""

import dagster as dg
import pyarrow as pa

from assets.definitions import defs
from assets.partitions import hourly_partitions
from ml.io.lake import partition_dir
from ml.io.store import Store, parquet_parts
from resources.device import Device
from resources.storage import LakeStorage, LandingZone

ASSETS, CHECKS = list(defs.assets), list(defs.asset_checks)


def resources(root: str) -> dict:
    storage = LakeStorage(root=root)
    return {
        "storage": storage,
        "landing": LandingZone(storage=storage),
        "device": Device(kind="cpu"),
    }


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


def tamper(store: Store, asset: str, key: str, fn):
    """Republish partition ``key`` of ``asset`` as ``fn(its table)``; returns a function
    that puts the original files and manifest back byte for byte.

    The tampered manifest is marked, so the tampered version always has its own digest
    (ml.io.gates binds a verdict to the manifest, which lists file sizes, not contents): a
    blocking check failed on the tampered version does not refuse the restored original."""
    rel = partition_dir(asset, key)
    man = store.manifest(rel)
    files = {n: store.read_bytes(f"{rel}/{n}") for n in man["files"]}
    meta = {k: v for k, v in man.items() if k != "files"}
    broken = parquet_parts(fn(store.read_published(rel).combine_chunks()))
    store.publish(rel, broken, {**meta, "tampered": True})
    return lambda: store.publish(rel, files, meta)


def set_col(t: pa.Table, name: str, values) -> pa.Table:
    """``t`` with column ``name`` replaced by ``values`` (cast to its type)."""
    return t.set_column(
        t.schema.get_field_index(name), name, pa.array(values, t.schema.field(name).type)
    )
