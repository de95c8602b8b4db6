"""The volume gate as Dagster runs it: an hour whose exposures fell far below the hours
before fails its blocking check, and from then on every reader refuses the partition,
naming it and the check, until a new version passes."""

import json

import dagster as dg
import pytest

from assets.lake import LIVE_EXPOSURES, require_published
from ml.hours import HOUR_MS, parse_hour, partition_key
from ml.io.lake import partition_dir
from ml.io.store import Store
from tests.dagster_helpers import run_check

H0 = parse_hour("2026-01-01-00:00")
KEYS = [partition_key(H0 + i * HOUR_MS) for i in range(4)]


def publish_exposures(lake: Store, key: str, exposures: int) -> None:
    rel = partition_dir(LIVE_EXPOSURES, key)
    lake.publish(rel, {"part-0.parquet": b"x"}, {"exposures": exposures})


def test_an_hour_that_lost_its_exposures_is_gated_for_every_later_reader(tmp_path):
    root = str(tmp_path / "home")
    lake = Store(root)
    for key, n in zip(KEYS, [1000, 1100, 900, 200], strict=True):
        publish_exposures(lake, key, n)
    assert run_check(root, LIVE_EXPOSURES, "volume", KEYS[2])  # 900 vs a median of 1050
    assert not run_check(root, LIVE_EXPOSURES, "volume", KEYS[3])  # 200 vs 1000
    gate = json.loads(lake.read_bytes(f"lake/_gates/{LIVE_EXPOSURES}/{KEYS[3]}/volume.json"))
    assert "volume_ratio=0.2" in gate["detail"]
    with pytest.raises(
        dg.Failure, match=rf"{LIVE_EXPOSURES} {KEYS[3]} failed its blocking check 'volume'"
    ):
        require_published(lake, LIVE_EXPOSURES, KEYS[3])
    require_published(lake, LIVE_EXPOSURES, KEYS[2])  # the hours before are still read

    # the hour rebuilt with its exposures back: a new version, judged by its own check
    publish_exposures(lake, KEYS[3], 950)
    require_published(lake, LIVE_EXPOSURES, KEYS[3])  # the old verdict no longer applies
    assert run_check(root, LIVE_EXPOSURES, "volume", KEYS[3])
