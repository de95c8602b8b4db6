"""The catalog keeps up with the stream: eight simulated hours, run one at a time in the
order the landing-readiness sensor asks for them, each hour checked against the catalog
of that hour. Rooms start throughout the day, yet no hour quarantines an event for an
unknown item (the simulator plants no bad lines here), and the rooms known grow hour by
hour."""

import dagster as dg
import pytest

from assets.definitions import defs, hourly_ingestion_job
from assets.sensors import build_landing_ready_sensor
from ml.hours import HOUR_MS, parse_hour, partition_key
from ml.io.store import Store
from ml.sim import SimConfig, simulate
from resources.device import Device
from resources.storage import LakeStorage, LandingZone

pytestmark = pytest.mark.slow
HOURS = 8
START = "2026-01-01-00:00"
KEYS = [partition_key(parse_hour(START) + i * HOUR_MS) for i in range(HOURS)]
INGESTION = ["content_catalog", "raw_live_events", "raw_short_video_events"]


def test_hour_by_hour_every_item_is_known_in_its_hour(tmp_path):
    home = Store(str(tmp_path / "home"))
    simulate(SimConfig(hours=HOURS, users=200, seed=11), home.root, progress=False)
    storage = LakeStorage(root=home.root)
    resources = {"storage": storage, "landing": LandingZone(storage=storage), "device": Device()}
    sensor = build_landing_ready_sensor(hourly_ingestion_job, [dg.AssetKey(a) for a in INGESTION])
    assets = [defs.get_assets_def(a) for a in INGESTION]
    checks = [c for c in defs.asset_checks if {k.asset_key for k in c.check_keys} & set(
        a.key for a in assets
    )]  # fmt: skip
    ran = []
    with dg.instance_for_test() as instance:
        while True:
            with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
                req = sensor(ctx)
            if isinstance(req, dg.SkipReason):
                break
            ran.append(req.partition_key)
            res = dg.materialize(
                [*assets, *checks], partition_key=req.partition_key, instance=instance,
                resources=resources,
            )  # fmt: skip
            assert res.success, req.partition_key
        assert ran == KEYS
        assert f"hour {partition_key(parse_hour(START) + HOURS * HOUR_MS)} is not ready" in (
            req.skip_message
        )
    rooms = []
    for key in KEYS:
        for asset in ("raw_live_events", "raw_short_video_events"):
            man = home.manifest(f"lake/{asset}/{key}")
            assert man["clean"] > 0 and man["quarantined"] == 0, (asset, key, man["reasons"])
        rooms.append(home.manifest(f"lake/content_catalog/{key}")["rows"]["rooms"])
    assert rooms == sorted(rooms) and rooms[-1] > rooms[0]
