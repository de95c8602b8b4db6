"""The whole ingestion path against a real S3 API (moto server on 127.0.0.1) through s3fs,
compared byte for byte with the same run on a local data root."""

import os
import subprocess
import sys

import dagster as dg
import pytest

from assets.ingestion import content_catalog, raw_live_events, raw_short_video_events
from assets.ingestion_checks import ingestion_checks
from ml.io.store import Store
from resources.storage import LakeStorage, LandingZone, storage_from_env
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e
KEYS = ["2026-01-01-00:00", "2026-01-01-01:00"]
SIM = [
    "--start",
    "2026-01-01-00:00",
    "--hours",
    "2",
    "--users",
    "400",
    "--seed",
    "5",
    "--bad-rate",
    "0.002",
]


def simulate(root: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "ml.sim", "--out", root, *SIM],
        cwd=ROOT, check=True, capture_output=True, env=os.environ.copy(),
    )  # fmt: skip


def materialize_all(storage: LakeStorage) -> None:
    res_defs = {"storage": storage, "landing": LandingZone(storage=storage)}
    defs = [content_catalog, raw_live_events, raw_short_video_events, *ingestion_checks]
    for key in KEYS:  # the catalog of the hour, then its raw events
        sel = dg.AssetSelection.assets(content_catalog, raw_live_events, raw_short_video_events)
        result = dg.materialize(defs, selection=sel, partition_key=key, resources=res_defs)
        assert result.success
        evals = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert len(evals) == 9 and all(e.asset_check_evaluation_data.passed for e in evals)


def lake_files(store: Store) -> dict[str, bytes]:
    out = {}
    assets = (
        "content_catalog",
        "raw_live_events",
        "raw_short_video_events",
        "quarantine/raw_live_events",
    )
    for asset in assets:
        for key in KEYS:
            d = f"lake/{asset}/{key}"
            out.update({f"{d}/{n}": store.read_bytes(f"{d}/{n}") for n in store.list(d)})
    return out


def test_ingestion_on_s3_matches_local(s3_env, tmp_path, monkeypatch):
    local = Store(str(tmp_path / "home"))
    simulate(local.root)
    materialize_all(LakeStorage(root=local.root))

    s3_root = f"s3://{s3_env}/livecross"
    simulate(s3_root)  # the simulator writes straight to S3 as well
    monkeypatch.setenv("LIVECROSS_HOME", s3_root)
    storage = storage_from_env()  # the code path Definitions uses: EnvVar credentials
    assert isinstance(storage.aws_secret_access_key, dg.EnvVar)
    materialize_all(storage)

    s3 = Store(s3_root)  # credentials from the AWS_* variables
    local_files, s3_files = lake_files(local), lake_files(s3)
    assert set(local_files) == set(s3_files) and len(local_files) > 10
    for name, data in local_files.items():
        assert s3_files[name] == data, f"{name} differs between local and S3"
    # And the landing the simulator wrote is the same bytes on both.
    live = "landing/live/2026-01-01-01"
    for n in local.list(live):
        assert local.read_bytes(f"{live}/{n}") == s3.read_bytes(f"{live}/{n}")
    assert local.manifest("lake/raw_live_events/2026-01-01-01:00")["quarantined"] > 0
