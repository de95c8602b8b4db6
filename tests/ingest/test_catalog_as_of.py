"""The catalog of hour H is the export as of H's end: rows born later are left out and
counted, a room still live then has no end yet, quarantined rows keep their own row
numbers, and an export older than the hour is not ready."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ml.hours import HOUR_MS
from ml.ingest.catalog import catalog_changes, check_export_covers, ingest_catalog
from ml.ingest.landing import LandingHourNotReadyError
from ml.io.store import Store
from tests.landing_helpers import AUTHOR, H0, ROOM, write_catalog

LATE_ROOM, BAD_ROOM = ROOM + 1, ROOM + 2
MIN = 60_000


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "home"))
    write_catalog(s, rooms=(ROOM, LATE_ROOM, BAD_ROOM))
    rooms = s.read_parquet("landing/catalog/rooms.parquet")
    # ROOM: live from before H0 to H0+2h; LATE_ROOM starts at H0+90 min; BAD_ROOM (an
    # unknown author) starts at H0+10 min and ends at H0+20 min.
    start = pa.array([H0 - 10 * MIN, H0 + 90 * MIN, H0 + 10 * MIN], pa.int64())
    end = pa.array([H0 + 120 * MIN, H0 + 150 * MIN, H0 + 20 * MIN], pa.int64())
    author = pa.array([AUTHOR, AUTHOR, AUTHOR + 1], pa.int64())
    for name, col in (("start_ms", start), ("end_ms", end), ("author_id", author)):
        i = rooms.schema.get_field_index(name)
        rooms = rooms.set_column(i, rooms.schema.field(i), col.cast(rooms.schema.field(i).type))
    s.write_parquet("landing/catalog/rooms.parquet", rooms)
    return s


def test_rows_born_after_the_hour_are_not_yet_known(store):
    first = ingest_catalog(store, as_of_ms=H0 + HOUR_MS)
    assert first.conserved()
    assert first.tables["rooms"].column("item_id").to_pylist() == [ROOM]
    assert first.not_yet["rooms"] == 1 and first.rows_in["rooms"] == 3
    # the bad row is quarantined with its own row number (3rd row), not its filtered one
    (q,) = first.quarantine.to_pylist()
    assert q["line_number"] == 3 and q["source_file"].endswith("rooms.parquet")
    assert json.loads(q["raw_line"])["item_id"] == BAD_ROOM

    second = ingest_catalog(store, as_of_ms=H0 + 2 * HOUR_MS)
    assert second.conserved() and second.not_yet["rooms"] == 0
    assert second.tables["rooms"].column("item_id").to_pylist() == [ROOM, LATE_ROOM]


def test_a_room_still_live_at_the_hour_end_has_no_end_yet(store):
    rooms = ingest_catalog(store, as_of_ms=H0 + HOUR_MS).tables["rooms"]
    assert rooms.column("end_ms").to_pylist() == [None]  # ends at H0+2h: after the cut
    later = ingest_catalog(store, as_of_ms=H0 + 3 * HOUR_MS).tables["rooms"]
    assert later.column("end_ms").to_pylist() == [H0 + 120 * MIN, H0 + 150 * MIN]


def test_the_same_hour_gives_the_same_catalog_while_the_export_grows(store):
    before = ingest_catalog(store, as_of_ms=H0 + HOUR_MS)
    rooms = store.read_parquet("landing/catalog/rooms.parquet")
    later_row = rooms.slice(1, 1)  # another room born later: appended by the next export
    i = later_row.schema.get_field_index("item_id")
    later_row = later_row.set_column(i, "item_id", pa.array([ROOM + 9], pa.int64()))
    store.write_parquet("landing/catalog/rooms.parquet", pa.concat_tables([rooms, later_row]))
    after = ingest_catalog(store, as_of_ms=H0 + HOUR_MS)
    assert after.tables["rooms"].equals(before.tables["rooms"])
    assert after.not_yet["rooms"] == before.not_yet["rooms"] + 1
    assert pc.sum(after.tables["rooms"].column("item_id")).as_py() == ROOM


def test_an_export_older_than_the_hour_is_not_ready(store):
    store.write_bytes("landing/catalog/_SUCCESS", json.dumps({"as_of_ms": H0 + HOUR_MS}).encode())
    check_export_covers(store, H0 + HOUR_MS)
    with pytest.raises(LandingHourNotReadyError, match=r"is as of 2026-01-01-01:00"):
        check_export_covers(store, H0 + 2 * HOUR_MS)
    # an export without as_of_ms is a complete historical dump: it covers every hour
    store.write_bytes("landing/catalog/_SUCCESS", b"{}")
    check_export_covers(store, H0 + 100 * HOUR_MS)


def test_what_is_new_and_what_vanished_since_the_hour_before(store, tmp_path):
    from ml.io.store import parquet_bytes

    lake = Store(str(tmp_path / "lake"))
    first = ingest_catalog(store, as_of_ms=H0 + HOUR_MS).tables
    assert catalog_changes(lake, None, first)["new"] == {n: t.num_rows for n, t in first.items()}
    # the previous hour not published: nothing to compare with
    assert catalog_changes(lake, "lake/content_catalog/x", first)["new"]["rooms"] == -1
    lake.publish(
        "lake/content_catalog/x", {f"{n}.parquet": parquet_bytes(t) for n, t in first.items()}, {}
    )
    second = ingest_catalog(store, as_of_ms=H0 + 2 * HOUR_MS).tables
    changes = catalog_changes(lake, "lake/content_catalog/x", second)
    assert changes["new"] == {"authors": 0, "short_videos": 0, "rooms": 1}  # LATE_ROOM
    assert changes["vanished"] == {"authors": 0, "short_videos": 0, "rooms": 0}
    # an export that lost a room: the next hour says so
    shrunk = {
        **second,
        "rooms": second["rooms"].filter(pc.equal(second["rooms"]["item_id"], LATE_ROOM)),
    }
    assert catalog_changes(lake, "lake/content_catalog/x", shrunk)["vanished"]["rooms"] == 1
