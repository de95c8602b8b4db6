"""The ingestion assets and checks materialized through Dagster on real Parquet files."""

import dagster as dg
import pyarrow as pa
import pytest

from assets.ingestion import content_catalog, raw_live_events, raw_short_video_events
from assets.ingestion_checks import ingestion_checks
from ml.hours import HOUR_MS
from ml.io.store import Store
from resources.storage import LakeStorage, LandingZone
from tests.landing_helpers import (
    H0,
    ROOM,
    event,
    list_in_manifest,
    write_catalog,
    write_landing,
)

K0, K1 = "2026-01-01-00:00", "2026-01-01-01:00"
ASSETS = [content_catalog, raw_live_events, raw_short_video_events, *ingestion_checks]


@pytest.fixture
def home(tmp_path):
    store = Store(str(tmp_path / "home"))
    write_catalog(store)
    return store


def resources(store: Store) -> dict:
    storage = LakeStorage(root=store.root)
    return {"storage": storage, "landing": LandingZone(storage=storage)}


def run(store, selection, key=None, extra=(), raise_on_error=True, instance=None):
    if isinstance(selection, str):
        selection = dg.AssetSelection.assets(*selection.split(" or "))
    return dg.materialize(
        [*ASSETS, *extra],
        selection=selection,
        partition_key=key,
        resources=resources(store),
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def check_results(result) -> dict[str, bool]:
    return {
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:{e.asset_check_evaluation_data.check_name}": e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def write_sv_hour(store, hour_ms):
    write_landing(
        store,
        "short_video",
        hour_ms,
        [event(f"s{hour_ms}", "play", domain="short_video", t=hour_ms - H0 + 10)],
    )


def test_catalog_then_two_hours_with_cross_hour_duplicate(home):
    fill = [event(f"f{i}", t=100 + i) for i in range(40)]  # keeps the quarantine rate < 5%
    write_landing(
        home, "live", H0, [event("a", t=10), *fill, event("late-dup", t=HOUR_MS - 3_000), b"{oops"]
    )
    write_landing(
        home,
        "live",
        H0 + HOUR_MS,
        [
            event("late-dup", t=HOUR_MS - 3_000, report_time_ms=H0 + HOUR_MS + 40_000),
            event("b", t=HOUR_MS + 5_000),
        ],
    )
    for h in (H0, H0 + HOUR_MS):
        write_sv_hour(home, h)
    assert run(home, "content_catalog", K0).success
    r0 = run(home, "raw_live_events or raw_short_video_events", K0)
    assert r0.success
    assert all(check_results(r0).values()), check_results(r0)
    mat = r0.asset_materializations_for_node("raw_live_events")[0]
    # "a", the fill and "late-dup" are clean; "{oops" is quarantined
    assert mat.metadata["dagster/row_count"].value == 1 + len(fill) + 1
    assert mat.metadata["quarantined"].value == 1
    assert run(home, "content_catalog", K1).success
    r1 = run(home, "raw_live_events", K1)
    assert r1.success
    m1 = r1.asset_materializations_for_node("raw_live_events")[0].metadata
    assert m1["duplicates"].value == 1 and m1["dagster/row_count"].value == 1
    clean = home.read_published("lake/raw_live_events/2026-01-01-01:00")
    assert clean.column("event_id").to_pylist() == ["b"]
    q = home.read_published("lake/quarantine/raw_live_events/2026-01-01-01:00").to_pylist()
    assert [r["reason"] for r in q] == ["duplicate_prior_hour"]
    # 1 duplicate in 2 lines is far outside the band: the (non-blocking) check warns.
    assert check_results(r1) == {
        "raw_live_events:conservation": True,
        "raw_live_events:duplicate_rate": False,
        "raw_live_events:quarantine_rate": True,
        "raw_live_events:schema_and_ranges": True,
    }


def test_blocking_quarantine_check_stops_downstream(home):
    write_landing(home, "live", H0, [event("a"), b"bad1", b"bad2", event("b", item_id=9)])
    ran = []

    @dg.asset(partitions_def=raw_live_events.partitions_def, deps=[raw_live_events])
    def downstream_probe():
        ran.append(True)
        return dg.MaterializeResult()

    assert run(home, "content_catalog", K0).success
    res = run(
        home,
        "raw_live_events or downstream_probe",
        K0,
        extra=[downstream_probe],
        raise_on_error=False,
    )
    checks = check_results(res)
    assert checks["raw_live_events:quarantine_rate"] is False
    assert checks["raw_live_events:conservation"] is True
    assert not ran, "a failing blocking check must stop downstream assets"
    assert not res.success


def test_rematerializing_replaces_partition_whole_with_identical_bytes(home):
    write_landing(home, "live", H0, [event(f"e{i}", t=i) for i in range(100)])
    assert run(home, "content_catalog", K0).success
    assert run(home, "raw_live_events", K0).success
    part = "lake/raw_live_events/2026-01-01-00:00"
    before = home.read_bytes(f"{part}/part-00000.parquet")
    home.write_bytes(f"{part}/stale-part.parquet", b"left over from an older run")
    assert run(home, "raw_live_events", K0).success
    assert home.read_bytes(f"{part}/part-00000.parquet") == before
    assert "stale-part.parquet" not in home.list(part)


def test_missing_previous_partition_is_a_clear_failure(home):
    write_landing(home, "live", H0 + HOUR_MS, [event("x", t=HOUR_MS + 1)])
    assert run(home, "content_catalog", K1).success
    with pytest.raises(dg.Failure, match=r"raw_live_events 2026-01-01-00:00 is not materialized"):
        run(home, "raw_live_events", K1)


def test_missing_landing_hour_and_catalog_errors(home):
    with pytest.raises(dg.Failure, match="content_catalog 2026-01-01-00:00 is not materialized"):
        run(home, "raw_live_events", K0)
    assert run(home, "content_catalog", K0).success
    with pytest.raises(Exception, match=r"missing landing hour.*landing/live/2026-01-01-00"):
        run(home, "raw_live_events", K0)


def test_invalid_partition_key_is_rejected(home):
    with pytest.raises(Exception, match="2026-13-01-00:00"):
        run(home, "raw_live_events", "2026-13-01-00:00")


def test_corrupt_file_fails_by_default_and_quarantines_on_request(home):
    import gzip
    import json

    body = b"".join(json.dumps(event(f"c{i}", t=i)).encode() + b"\n" for i in range(3000))
    data = gzip.compress(body, mtime=0)
    # cut in half: about half of the listed lines are never read
    home.write_bytes("landing/live/2026-01-01-00/part-00000.jsonl.gz", data[: len(data) // 2])
    list_in_manifest(home, "live", H0, "part-00000.jsonl.gz", len(data), 3000)
    assert run(home, "content_catalog", K0).success
    with pytest.raises(Exception, match=r"corrupt landing file .*part-00000.jsonl.gz"):
        run(home, "raw_live_events", K0)
    res = dg.materialize(
        ASSETS,
        selection=dg.AssetSelection.assets("raw_live_events"),
        partition_key=K0,
        resources=resources(home),
        run_config={"ops": {"raw_live_events": {"config": {"corrupt_files": "quarantine"}}}},
        raise_on_error=False,
    )
    q = home.read_published("lake/quarantine/raw_live_events/2026-01-01-00:00")
    assert "corrupt_file" in q.column("reason").to_pylist()
    man = home.manifest("lake/raw_live_events/2026-01-01-00:00")
    assert man["lines_in"] == 3000 and man["lost"] > 1000
    assert man["clean"] + man["quarantined"] + man["lost"] == 3000
    # The loss is visible to the blocking rate check (it fails), and conservation holds.
    checks = check_results(res)
    assert checks["raw_live_events:conservation"] is True
    assert checks["raw_live_events:quarantine_rate"] is False


def test_catalog_quarantines_bad_rows(home):
    rooms = home.read_parquet("landing/catalog/rooms.parquet")
    bad = rooms.set_column(0, "item_id", pa.array([rooms.column("item_id")[0].as_py()], pa.int64()))
    home.write_parquet("landing/catalog/rooms.parquet", pa.concat_tables([rooms, bad]))
    res = run(home, "content_catalog", K0)
    assert res.success
    assert check_results(res) == {"content_catalog:catalog_keys_and_conservation": True}
    q = home.read_published(f"lake/quarantine/content_catalog/{K0}").to_pylist()
    assert [(r["reason"], r["line_number"]) for r in q] == [("duplicate_id", 2)]


def add_room(store: Store, item_id: int, start_ms: int, end_ms: int) -> None:
    """Append a room (a copy of the first one) with its own id and lifetime."""
    rooms = store.read_parquet("landing/catalog/rooms.parquet")
    new = rooms.slice(0, 1)
    for name, value in (("item_id", item_id), ("start_ms", start_ms), ("end_ms", end_ms)):
        new = new.set_column(new.schema.get_field_index(name), name, pa.array([value], pa.int64()))
    store.write_parquet("landing/catalog/rooms.parquet", pa.concat_tables([rooms, new]))


def test_catalog_is_as_of_the_end_of_each_hour(home):
    later = ROOM + 1  # starts 1 min into hour 1 and ends 10 min later
    add_room(home, later, H0 + HOUR_MS + 60_000, H0 + HOUR_MS + 600_000)
    fill = [event(f"f{i}", t=100 + i) for i in range(40)]  # keeps the quarantine rate < 5%
    write_landing(home, "live", H0, [*fill, event("early", item_id=later, t=5_000)])
    write_landing(home, "live", H0 + HOUR_MS, [event("b", item_id=later, t=HOUR_MS + 120_000)])
    r0 = run(home, "content_catalog or raw_live_events", K0)
    assert r0.success
    man0 = home.manifest(f"lake/content_catalog/{K0}")
    assert man0["partition"] == K0 and man0["as_of_ms"] == H0 + HOUR_MS
    assert man0["rows"]["rooms"] == 1 and man0["not_yet"] == {
        "authors": 0,
        "short_videos": 0,
        "rooms": 1,
    }
    rooms0 = home.read_parquet(f"lake/content_catalog/{K0}/rooms.parquet").to_pylist()
    # ROOM runs until H0 + 2 h: at the end of hour 0 it is live, so it has no end yet
    assert [(r["item_id"], r["end_ms"]) for r in rooms0] == [(ROOM, None)]
    # an event on a room the catalog of its hour does not know yet is quarantined
    q0 = home.read_published(f"lake/quarantine/raw_live_events/{K0}").to_pylist()
    assert [(r["event_id"], r["reason"]) for r in q0] == [("early", "unknown_item")]

    assert run(home, "content_catalog or raw_live_events", K1).success
    man1 = home.manifest(f"lake/content_catalog/{K1}")
    assert man1["rows"]["rooms"] == 2 and man1["not_yet"]["rooms"] == 0
    rooms1 = home.read_parquet(f"lake/content_catalog/{K1}/rooms.parquet").to_pylist()
    assert {r["item_id"]: r["end_ms"] for r in rooms1} == {
        ROOM: None,
        later: H0 + HOUR_MS + 600_000,
    }
    clean1 = home.read_published(f"lake/raw_live_events/{K1}")
    assert clean1.column("event_id").to_pylist() == ["b"]
    # catalog[0] is unchanged by the later hour
    assert home.manifest(f"lake/content_catalog/{K0}") == man0


def test_catalog_of_an_hour_past_the_export_is_not_ready(home):
    import json

    home.write_bytes("landing/catalog/_SUCCESS", json.dumps({"as_of_ms": H0 + HOUR_MS}).encode())
    assert run(home, "content_catalog", K0).success  # the export covers hour 0 exactly
    with pytest.raises(Exception, match=r"catalog export .* is as of 2026-01-01-01:00"):
        run(home, "content_catalog", K1)
    assert home.manifest(f"lake/content_catalog/{K1}") is None


def test_corrupt_catalog_parquet_names_the_file(home):
    home.write_bytes("landing/catalog/rooms.parquet", b"PAR1 truncated")
    with pytest.raises(Exception, match=r"corrupt landing file .*landing/catalog/rooms\.parquet"):
        run(home, "content_catalog", K0)


def test_catalog_missing_column_names_it(home):
    rooms = home.read_parquet("landing/catalog/rooms.parquet").drop_columns(["end_ms"])
    home.write_parquet("landing/catalog/rooms.parquet", rooms)
    with pytest.raises(
        Exception,
        match=r"catalog table 'rooms' \(.*rooms\.parquet\) lacks column\(s\) \['end_ms'\]",
    ):
        run(home, "content_catalog", K0)


def test_unreachable_storage_is_one_clear_error(monkeypatch):
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    storage = LakeStorage(
        root="s3://lc-gone/home", s3_endpoint_url=f"http://127.0.0.1:{free_port()}"
    )
    with pytest.raises(Exception, match=r"data root 's3://lc-gone/home' is unreachable"):
        dg.materialize(
            ASSETS,
            selection=dg.AssetSelection.assets("content_catalog"),
            partition_key=K0,
            resources={"storage": storage, "landing": LandingZone(storage=storage)},
        )


def test_missing_content_hour_names_the_file(home):
    from assets.content import live_segments

    write_landing(home, "live", H0, [event(f"e{i}", t=i) for i in range(50)])
    assert run(home, "content_catalog", K0).success
    assert run(home, "raw_live_events", K0).success
    with pytest.raises(
        Exception, match=r"missing landing hour.*landing/content/2026-01-01-00/segments\.parquet"
    ):
        run(home, "live_segments", K0, extra=[live_segments])
