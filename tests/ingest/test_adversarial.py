"""Adversarial input through the whole ingestion path: a reason or one clear error, never a
crash; conservation exact. Hand-built classes first, then property and coverage fuzzing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml.ingest.catalog import CatalogSchemaError, ingest_catalog
from ml.ingest.jsonl import count_lines
from ml.ingest.landing import CorruptFileError
from ml.ingest.landing_hour import IngestConfig, ingest_hour
from ml.io.store import Store
from tests.landing_helpers import H0, ROOM, event, list_in_manifest, write_catalog, write_landing

KNOWN = pa.array([ROOM], pa.int64())
HERE = Path(__file__).resolve().parent


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(str(tmp_path / "home"))


def _one_bad(store, bad: bytes):
    write_landing(store, "live", H0, [event("ok", t=1), bad])
    res = ingest_hour(store, "live", H0, known_items=KNOWN)
    assert res.conserved() and res.clean.column("event_id").to_pylist() == ["ok"]
    (row,) = res.quarantine.to_pylist()
    return row["reason"], row["detail"]


@pytest.mark.parametrize(
    "bad, reason, detail",
    [
        (b"[" * 100_000 + b"]" * 100_000, "malformed_json", "nested too deep"),
        (b'{"a":' * 200_000, "malformed_json", "nested too deep"),
        (b'{"event_id": "a", "event_id": "b"}', "malformed_json", "key 'event_id' appears twice"),
        (
            json.dumps(event("f", "gift")).encode().replace(b"10.0", b"1e400"),
            "wrong_type",
            "gift_value: a number beyond the range of double",
        ),
        (  # an integer literal this long is read as a float: inf, beyond the bounds
            json.dumps(event("f", "gift")).encode().replace(b"10.0", b"1" + b"0" * 400),
            "absurd_value",
            "gift_value=inf",
        ),
        (
            json.dumps(event("n", "gift")).encode().replace(b"10.0", b"NaN"),
            "absurd_value",
            "gift_value=nan",
        ),
        (
            json.dumps(event("p", page="nowhere")).encode(),
            "unknown_page",
            "'nowhere' is not one of",
        ),
    ],
    ids=[
        "deep-array",
        "deep-unclosed",
        "duplicate-key",
        "float-1e400",
        "float-10^400",
        "nan",
        "page",
    ],
)
def test_each_adversarial_line_gets_a_reason_that_says_what_it_is(store, bad, reason, detail):
    got_reason, got_detail = _one_bad(store, bad)
    assert got_reason == reason and detail in got_detail, got_detail
    assert "invalid text" not in got_detail


def test_a_missing_page_is_allowed(store):
    write_landing(store, "live", H0, [event("a", page=None)])
    res = ingest_hour(store, "live", H0, known_items=KNOWN)
    assert res.clean.num_rows == 1 and res.conserved()


def test_an_empty_catalog_table_publishes_empty(store):
    write_catalog(store)
    rooms = store.read_parquet("landing/catalog/rooms.parquet")
    store.write_parquet("landing/catalog/rooms.parquet", rooms.slice(0, 0))
    res = ingest_catalog(store)
    assert res.conserved() and res.tables["rooms"].num_rows == 0


def test_an_embedding_of_the_wrong_fixed_width_names_file_and_column(store):
    write_catalog(store)
    rooms = store.read_parquet("landing/catalog/rooms.parquet")
    i = rooms.schema.get_field_index("embedding")
    wide = pa.FixedSizeListArray.from_arrays(
        pa.array([0.5] * (rooms.num_rows * 7), pa.float32()), 7
    )
    store.write_parquet("landing/catalog/rooms.parquet", rooms.set_column(i, "embedding", wide))
    with pytest.raises(
        CatalogSchemaError,
        match=r"rooms\.parquet.*column 'embedding' of type fixed_size_list<.*>\[7\]",
    ):
        ingest_catalog(store)


# ---- fuzzing --------------------------------------------------------------------------------

_EVENT = json.dumps(event("e", "gift", t=5)).encode()
_PIECES = st.sampled_from(
    [b"{", b"}", b"[", b"]", b'"', b"\\", b":", b",", b"\n", b"\r", b" ", b"\x00", b"\xff",
     b"\xc3", b"\\ud800", b"\\u00e9", b"1e400", b"-0", b"NaN", b"null", b"true", b'"event_id"',
     b'"page"', b'"gift_value"', b"\x1f\x8b", _EVENT, _EVENT[:40], _EVENT[40:]]
)  # fmt: skip
JSONISH = st.one_of(
    st.binary(max_size=300),
    st.lists(_PIECES, max_size=40).map(b"".join),
    st.lists(st.one_of(_PIECES, st.binary(max_size=8)), max_size=60).map(b"".join),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=JSONISH)
def test_fuzz_no_exception_and_exact_conservation(tmp_path_factory, body):
    store = Store(str(tmp_path_factory.mktemp("fuzz")))
    rel = "landing/live/2026-01-01-00/part-00000.jsonl"
    store.write_bytes(rel, body)
    list_in_manifest(store, "live", H0, "part-00000.jsonl", len(body), count_lines(body))
    for cfg in (IngestConfig(), IngestConfig(corrupt_files="quarantine")):
        try:
            res = ingest_hour(store, "live", H0, known_items=KNOWN, config=cfg)
        except CorruptFileError:  # bytes that open like gzip: strict mode's clear error
            assert cfg.corrupt_files == "fail" and body[:2] == b"\x1f\x8b"
            continue
        assert res.conserved(), res.manifest()
        assert res.lines_in == count_lines(body)


def test_coverage_guided_fuzzing_with_atheris(tmp_path):
    """libFuzzer over the same path, bounded (1,500 runs or 60 s); a crash exits non-zero.
    Longer campaigns: ``python tests/ingest/fuzz_ingest.py -max_total_time=3600``."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "fuzz_ingest.py"), "-runs=1500", "-max_len=512", "-seed=1",
         "-max_total_time=60", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done " in proc.stderr and " runs in " in proc.stderr  # runs or time ran out
