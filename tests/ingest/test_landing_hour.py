"""Ingestion of hand-built landing hours: one test per bad-input class, dedup, conservation."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.hours import HOUR_MS
from ml.ingest.landing import (
    CorruptFileError,
    IncompleteLandingHourError,
    LandingHourNotReadyError,
    MissingLandingHourError,
)
from ml.ingest.landing_hour import (
    IngestConfig,
    LandingRecount,
    ingest_hour,
    recount_landing_lines,
)
from ml.io.store import Store
from tests.landing_helpers import H0, ROOM, event, line, list_in_manifest, write_landing

KNOWN_ROOMS = pa.array([ROOM], pa.int64())
SALVAGE = IngestConfig(corrupt_files="quarantine")


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(str(tmp_path / "home"))


def run(store, lines, domain="live", **kw):
    write_landing(store, domain, H0, lines)
    res = ingest_hour(store, domain, H0, known_items=kw.pop("known", KNOWN_ROOMS), **kw)
    assert res.conserved(), (res.lines_in, res.clean.num_rows, res.quarantine.num_rows)
    assert res.lines_in >= len(lines) and res.lines_lost == 0
    return res


def reasons(res) -> list[str]:
    return res.quarantine.column("reason").to_pylist()


def test_clean_hour_types_and_order(store):
    res = run(
        store, [event("b", t=5_000), event("a", "enter", t=1_000), event("c", "exit", t=9_000)]
    )
    assert res.clean.num_rows == 3 and res.quarantine.num_rows == 0
    assert res.clean.schema.field("user_id").type == pa.int64()
    assert res.clean.column("event_id").to_pylist() == ["a", "b", "c"]  # sorted by report time
    assert res.manifest()["event_types"] == {"enter": 1, "exit": 1, "impression": 1}


BAD_CASES = {
    "empty_line": b"   ",
    "malformed_json": b'{"event_id": "x1", "user_id": 1',
    "wrong_type": event("x2", user_id="u123"),
    "missing_id": event("x3", user_id=None),
    "unknown_event_type": event("x4", "teleport"),
    "missing_field": event("x5", "exit", watch_ms=None),
    "missing_time": event("x6", report_time_ms=None),
    "report_time_outside_partition": event("x7", report_time_ms=H0 + HOUR_MS + 5),
    "event_time_absurd": event("x8", event_time_ms=631_152_000_000),
    "event_after_report": event("x9", event_time_ms=H0 + 3_000_000, report_time_ms=H0 + 1_000),
    "negative_value": event("x10", "exit", watch_ms=-5),
    "absurd_value": event("x11", "gift", gift_value=1e12),
    "unknown_item": event("x12", item_id=42),
}


@pytest.mark.parametrize("reason", list(BAD_CASES))
def test_each_bad_class_is_quarantined_with_its_reason(store, reason):
    bad = BAD_CASES[reason]
    res = run(store, [event("ok1"), bad, event("ok2", t=2_000)])
    assert res.clean.column("event_id").to_pylist() == ["ok1", "ok2"]
    q = res.quarantine.to_pylist()
    assert [r["reason"] for r in q] == [reason]
    assert q[0]["line_number"] == 2
    assert q[0]["source_file"].endswith("part-00000.jsonl.gz")
    assert q[0]["detail"]
    expected_raw = bad if isinstance(bad, bytes) else json.dumps(bad).encode()
    assert q[0]["raw_line"] == expected_raw


def test_first_applicable_reason_wins(store):
    # Both a missing id and an unknown type: missing_id comes first in the documented order.
    res = run(store, [event("y", "teleport", user_id=None)])
    assert reasons(res) == ["missing_id"]


def test_array_and_two_objects_on_a_line_are_malformed(store):
    res = run(store, [b"[1, 2]", line2 := b'{"event_id":"a"} {"event_id":"b"}', event("ok")])
    assert reasons(res) == ["malformed_json", "malformed_json"]
    assert res.quarantine.column("raw_line").to_pylist()[1] == line2


def test_many_bad_lines_scattered_in_a_large_file(store):
    n_good = 5_000
    lines = []
    for i in range(n_good):
        lines.append(event(f"e{i}", t=i))
        if i % 97 == 0:
            lines.append(b"{not json")
        if i % 131 == 0:
            lines.append(event(f"w{i}", t=i, item_id="nope"))
    res = run(store, lines)
    assert res.clean.num_rows == n_good
    # one bad line after every 97th / 131st good one, the first included
    assert res.reason_counts == {
        "malformed_json": len(range(0, n_good, 97)),
        "wrong_type": len(range(0, n_good, 131)),
    }


def test_duplicates_within_hour_keep_earliest_report(store):
    first = event("d", t=1_000)
    redelivered = event("d", t=1_000, report_time_ms=H0 + 90_000)
    res = run(store, [redelivered, event("x", t=2_000), first])
    assert res.clean.column("event_id").to_pylist() == ["d", "x"]
    assert res.clean.column("report_time_ms").to_pylist()[0] == H0 + 1_200
    q = res.quarantine.to_pylist()
    assert [(r["reason"], r["line_number"]) for r in q] == [("duplicate", 1)]
    assert "line 3" in q[0]["detail"]
    assert res.n_duplicates == 1 and res.n_quarantined == 0


def test_duplicates_across_the_hour_boundary(store):
    # Delivered at the end of the previous hour and again early in this one.
    res = run(store, [event("p", t=500), event("fresh")], prior_event_ids=pa.array(["p", "zz"]))
    assert res.clean.column("event_id").to_pylist() == ["fresh"]
    assert reasons(res) == ["duplicate_prior_hour"]


def test_duplicates_across_files_of_one_hour(store):
    write_landing(store, "live", H0, [event("k", t=3_000)], name="part-00001.jsonl.gz")
    res = run(store, [event("k", t=3_000), event("m")])
    assert sorted(res.clean.column("event_id").to_pylist()) == ["k", "m"]
    q = res.quarantine.to_pylist()
    assert q[0]["reason"] == "duplicate" and q[0]["source_file"].endswith("part-00001.jsonl.gz")


def test_short_video_rules(store):
    from ml.schema import SHORT_VIDEOS_SCHEMA  # noqa: F401 - catalog contract exists

    sv = [
        event("s1", "play", domain="short_video"),
        event("s2", "enter", domain="short_video"),  # live-only type
        event("s3", "play", domain="short_video", duration_ms=None),
    ]
    res = run(store, sv, domain="short_video", known=pa.array([5], pa.int64()))
    assert res.clean.column("event_id").to_pylist() == ["s1"]
    assert reasons(res) == ["unknown_event_type", "missing_field"]


def test_missing_landing_hour_names_the_directory(store):
    with pytest.raises(MissingLandingHourError, match=r"landing/live/2026-01-01-00"):
        ingest_hour(store, "live", H0)


def _write_truncated(store, n=2000, cut=300, name="part-00000.jsonl.gz") -> str:
    """A gzip file of n listed lines, written cut bytes short (a sink crash mid-file)."""
    body = b"".join(json.dumps(event(f"c{i}", t=i)).encode() + b"\n" for i in range(n))
    rel = f"landing/live/2026-01-01-00/{name}"
    data = gzip.compress(body, mtime=0)
    store.write_bytes(rel, data[:-cut])
    list_in_manifest(store, "live", H0, name, len(data), n)
    return rel


def test_corrupt_gzip_fails_naming_the_file(store):
    _write_truncated(store)
    with pytest.raises(CorruptFileError, match=r"part-00000\.jsonl\.gz.*truncated"):
        ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS)


def test_corrupt_gzip_salvaged_counts_every_unread_line_as_lost(store):
    _write_truncated(store, n=3000)
    write_landing(store, "live", H0, [event("ok", t=5)], name="part-00001.jsonl.gz")
    res = ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS, config=SALVAGE)
    assert res.lines_in == 3001  # the manifest's count, not what could be read
    assert 0 < res.clean.num_rows < 3001 and res.lines_lost > 0
    assert res.conserved()
    (row,) = [r for r in res.quarantine.to_pylist() if r["reason"] == "corrupt_file"]
    assert f"{res.lines_lost} of 3000 listed lines lost" in row["detail"]
    assert res.manifest()["lost"] == res.lines_lost and res.n_damaged_files == 1


def test_hour_without_the_sink_manifest_is_not_ready(store):
    write_landing(store, "live", H0, [event("a")], listed=False)
    with pytest.raises(LandingHourNotReadyError, match=r"2026-01-01-00 is not ready.*_SUCCESS"):
        ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS)


def test_listed_but_absent_file_fails_or_is_counted_lost(store):
    write_landing(store, "live", H0, [event("a"), event("b")])
    list_in_manifest(store, "live", H0, "part-00001.jsonl.gz", 999, 40)  # never arrived
    with pytest.raises(
        IncompleteLandingHourError, match=r"part-00001\.jsonl\.gz \(40 lines\), absent"
    ):
        ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS)
    res = ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS, config=SALVAGE)
    assert (res.lines_in, res.clean.num_rows, res.lines_lost) == (42, 2, 40)
    assert res.reason_counts == {"missing_file": 1} and res.conserved()


def test_short_file_fails_or_is_counted_lost(store):
    write_landing(store, "live", H0, [event(f"s{i}", t=i) for i in range(7)])
    list_in_manifest(store, "live", H0, "part-00000.jsonl.gz", 1, 10)  # the sink wrote 10
    with pytest.raises(IncompleteLandingHourError, match=r"short: 7 lines.*lists 10"):
        ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS)
    res = ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS, config=SALVAGE)
    assert (res.lines_in, res.clean.num_rows, res.lines_lost) == (10, 7, 3)
    assert res.reason_counts == {"short_file": 1} and res.conserved()


def test_a_file_longer_than_listed_fails_in_both_modes(store):
    write_landing(store, "live", H0, [event(f"s{i}", t=i) for i in range(5)])
    list_in_manifest(store, "live", H0, "part-00000.jsonl.gz", 1, 4)
    for cfg in (IngestConfig(), SALVAGE):
        with pytest.raises(IncompleteLandingHourError, match=r"holds 5 lines.*lists 4"):
            ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS, config=cfg)


@pytest.mark.parametrize("name", ["part-1.json.gz", "PART-2.JSONL.GZ", "sub/part-3.jsonl", "x.log"])
def test_every_listed_file_is_read_whatever_its_name_or_folder(store, name):
    write_landing(store, "live", H0, [event("a", t=1)])
    write_landing(store, "live", H0, [event("b", t=2), event("c", t=3)], name=name)
    res = ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS)
    assert res.lines_in == 3 and res.clean.num_rows == 3 and res.conserved()
    assert res.unlisted_files == []


def test_unlisted_files_are_reported_not_read(store):
    write_landing(store, "live", H0, [event("a", t=1)])
    late = write_landing(store, "live", H0, [event("z", t=2)], name="late.jsonl.gz", listed=False)
    stray = write_landing(store, "live", H0, [event("y")], name="tmp/part.jsonl", listed=False)
    res = ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS)
    assert res.clean.column("event_id").to_pylist() == ["a"]
    assert res.unlisted_files == sorted([late, stray])
    assert res.manifest()["unlisted_files"] == res.unlisted_files


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"files": {"a.jsonl": 3}}', b'{"files": {"../x": 1}, "lines": {"../x": 1}}'],
)
def test_an_unreadable_sink_manifest_is_a_clear_error(store, body):
    write_landing(store, "live", H0, [event("a")], listed=False)
    store.write_bytes("landing/live/2026-01-01-00/_SUCCESS", body)
    with pytest.raises(IncompleteLandingHourError, match=r"sink manifest .*_SUCCESS does not list"):
        ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS)


def test_recount_agrees_with_ingestion_on_every_damage(store):
    _write_truncated(store, n=500, name="part-00000.jsonl.gz")
    write_landing(store, "live", H0, [event("k", t=9)], name="part-00001.jsonl.gz")
    list_in_manifest(store, "live", H0, "part-00001.jsonl.gz", 1, 3)  # short by 2
    list_in_manifest(store, "live", H0, "part-00002.jsonl.gz", 1, 8)  # absent
    res = ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS, config=SALVAGE)
    recount = recount_landing_lines(store, "live", H0)
    assert recount == LandingRecount(listed=511, lost=res.lines_lost)
    assert res.conserved()
    assert {"corrupt_file", "missing_file", "short_file"} <= set(res.reason_counts)


def test_same_input_same_output(store):
    lines = [event(f"e{i}", t=i * 7 % 1000) for i in range(300)] + [b"oops", event("e3")]
    a = run(store, lines)
    b = run(store, lines)
    assert a.clean.equals(b.clean) and a.quarantine.equals(b.quarantine)


def test_repeated_ids_exact_on_fixed_and_variable_width():
    from ml.ingest.landing_hour import repeated

    fixed = pa.array([f"E{i % 1000:06d}" for i in range(1500)])
    want = [i % 1000 < 500 for i in range(1500)]
    assert repeated(fixed).tolist() == want
    chunked = pa.chunked_array([fixed.slice(0, 700), fixed.slice(700)])
    assert repeated(chunked).tolist() == want
    variable = pa.array(["a", "bb", "a", "ccc", "bb", "d", None, None])
    assert repeated(variable).tolist() == [True, True, True, False, True, False, True, True]
    assert repeated(pa.array([], pa.string())).tolist() == []


def test_small_pieces_give_the_same_result_with_file_line_numbers(store):
    lines = []
    for i in range(3_000):
        lines.append(event(f"e{i}", t=i))
        if i % 401 == 7:
            lines.append(b"{broken")
        if i % 557 == 3:
            lines.append(event(f"e{i}", t=i))  # re-delivery right after
    write_landing(store, "live", H0, lines, name="part-00000.jsonl.gz")
    write_landing(store, "live", H0, lines[:500], name="part-00001.jsonl.gz")
    big = ingest_hour(store, "live", H0, known_items=KNOWN_ROOMS)
    small = ingest_hour(
        store, "live", H0, known_items=KNOWN_ROOMS, config=IngestConfig(piece_bytes=4096)
    )
    assert big.conserved() and small.conserved()
    assert small.clean.equals(big.clean)
    assert small.quarantine.equals(big.quarantine)
    for r in small.quarantine.to_pylist():  # the recorded line really is that line of that file
        assert r["raw_line"] == line(lines[r["line_number"] - 1])
    assert big.files == small.files


def test_inflate_multi_member_and_zero_padding():
    from ml.ingest.landing import gunzip, inflate

    body = b"".join(b'{"n": %d}\n' % i for i in range(10_000))
    blob = gzip.compress(body[:5000], mtime=0) + gzip.compress(body[5000:], mtime=0) + b"\0" * 64
    assert gunzip(blob, "x") == body
    pieces = list(inflate(blob, "x", piece_bytes=1000))
    assert b"".join(pieces) == body and len(pieces) > 50
    assert all(p.endswith(b"\n") for p in pieces)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=4), max_size=300), st.integers(0, 3))
def test_repeated_matches_value_counts(values, offset):
    from ml.ingest.dedup import _repeated_exact, repeated

    arr = pa.array(values, pa.string()).slice(min(offset, len(values)))
    assert repeated(arr).tolist() == _repeated_exact(arr).tolist()
    large = pa.array(values, pa.large_string())
    assert repeated(large).tolist() == _repeated_exact(large).tolist()


def test_repeated_over_many_buckets():
    from ml.ingest.dedup import _repeated_exact, repeated

    rng = np.random.default_rng(3)
    arr = pa.array([f"S{x:016d}" for x in rng.integers(0, 400_000, 100_000)])
    assert np.array_equal(repeated(arr), _repeated_exact(arr))


@pytest.mark.parametrize("piece_bytes", [700, 1 << 16, 32 << 20])
def test_inflate_pieces_and_salvage_add_up_to_the_decoded_prefix(piece_bytes):
    from ml.ingest import landing

    body = b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, b"x" * (i % 50)) for i in range(40_000))
    blob = gzip.compress(body, compresslevel=1, mtime=0)
    for cut in (len(blob), len(blob) - 9, len(blob) // 3, 30):
        pieces: list[bytes] = []
        try:
            for p in landing.inflate(blob[:cut], "x", piece_bytes=piece_bytes):
                pieces.append(p)
            salvaged = b""
        except CorruptFileError as e:
            salvaged = e.salvaged
            assert cut < len(blob)
        assert all(p.endswith(b"\n") for p in pieces[:-1]) and all(pieces)
        decoded = b"".join(pieces) + salvaged
        assert body.startswith(decoded) and (cut < len(blob) or decoded == body)
    garbage = blob + b"this is certainly not a gzip stream"
    with pytest.raises(CorruptFileError, match="damaged"):
        list(landing.inflate(garbage, "x", piece_bytes=piece_bytes))


# ---- invalid text ------------------------------------------------------------------------

INVALID_TEXT = {
    "bad byte in a string": (b'"feed"', b'"f\xffed"', "invalid UTF-8 at byte"),
    "truncated sequence": (b'"feed"', b'"fe\xc3"', "invalid UTF-8 at byte"),
    "overlong encoding": (b'"feed"', b'"\xc0\xafx"', "invalid UTF-8 at byte"),
    "lone surrogate escape": (b'"feed"', b'"\\ud800"', "lone UTF-16 surrogate"),
    "bad byte and wrong type": (b'"user_id": 1', b'"user_id": "\xff"', "invalid UTF-8"),
    "bad byte and malformed": (b'"page": "feed"}', b'"page": "\xfe', "invalid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(INVALID_TEXT))
@pytest.mark.parametrize("fast", [True, False])
def test_invalid_text_is_quarantined_with_its_bytes_and_never_reaches_clean(
    store, case, fast, monkeypatch
):
    old, new, why = INVALID_TEXT[case]
    bad = json.dumps(event("bad", t=2)).encode().replace(old, new)
    assert bad != json.dumps(event("bad", t=2)).encode()
    lines = [
        event("a", t=1),
        bad,
        event("c", t=3),
        event("é", t=4),  # non-ASCII and valid: clean
    ]
    if not fast:
        import ml.ingest.jsonl as J

        monkeypatch.setattr(J, "_scanner", lambda schema: None)
    res = run(store, lines)
    assert res.clean.column("event_id").to_pylist() == ["a", "c", "é"]
    (row,) = res.quarantine.to_pylist()
    assert (row["reason"], row["line_number"], row["raw_line"]) == ("invalid_utf8", 2, bad)
    assert why in row["detail"]
    for name in res.clean.schema.names:  # every clean string decodes
        if pa.types.is_string(res.clean.schema.field(name).type):
            for v in res.clean.column(name).cast(pa.binary()).to_pylist():
                assert v is None or v.decode("utf-8") is not None


def test_paired_surrogate_escapes_and_raw_utf8_are_valid_text(store):
    res = run(
        store, [event("\U0001f600", t=1), json.dumps(event("x", t=2), ensure_ascii=False).encode()]
    )
    assert res.quarantine.num_rows == 0 and res.clean.num_rows == 2
