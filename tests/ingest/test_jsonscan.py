"""The compiled JSON Lines decoder plus its pyarrow fallback give exactly what the pure
pyarrow reference path gives: same typed table (bit for bit), same row-to-line map,
same bad-line verdicts — on random valid, odd-but-valid and invalid lines."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml import schema as S
from ml.ingest import jsonscan
from ml.ingest.jsonl import parse_json_lines

SCHEMA = S.RAW_EVENT_SCHEMA
KINDS = {f.name: f.type for f in SCHEMA}


def same_column(a: pa.ChunkedArray, b: pa.ChunkedArray) -> bool:
    """Equal including float bits (-0.0, NaN) and invalid UTF-8, which Table.equals
    either conflates or cannot show."""
    if a.type != b.type or len(a) != len(b):
        return False
    if not np.array_equal(pc.is_null(a).to_numpy(False), pc.is_null(b).to_numpy(False)):
        return False
    if pa.types.is_string(a.type):
        return pc.cast(a, pa.binary()).to_pylist() == pc.cast(b, pa.binary()).to_pylist()
    fill = 0.0 if pa.types.is_floating(a.type) else 0
    x, y = (pc.fill_null(c, fill).to_numpy() for c in (a, b))
    return np.array_equal(x.view(np.int64), y.view(np.int64))


def assert_same(data: bytes) -> None:
    fast = parse_json_lines(data, SCHEMA)
    ref = parse_json_lines(data, SCHEMA, fast=False)
    assert fast.table.schema == ref.table.schema
    for name in SCHEMA.names:
        assert same_column(fast.table.column(name), ref.table.column(name)), name
    assert np.array_equal(fast.row_line, ref.row_line)
    assert np.array_equal(fast.starts, ref.starts) and np.array_equal(fast.ends, ref.ends)
    assert fast.bad == ref.bad


# ---- random lines ---------------------------------------------------------------------
ws = st.sampled_from(["", "", "", " ", "\t", "  ", "\r"])
plain_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
odd_text = st.text(max_size=6)  # any code point: escapes, non-ASCII, surrogates
ints = st.one_of(
    st.integers(-(10**6), 10**13),
    st.integers(-(2**63) - 2, 2**63 + 1),
    st.sampled_from([0, -1, 10**17, 10**18, 10**18 - 1, 2**63 - 1, -(2**63)]),
)
float_text = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda x: f"{x:.6g}"),
    st.builds(
        lambda m, f, e: f"{m}{'.' + f if f else ''}{'e' + str(e) if e is not None else ''}",
        st.integers(-(10**17), 10**17),
        st.sampled_from(["", "0", "5", "25", "000001", "123456789", "9999999999999999999"]),
        st.one_of(st.none(), st.integers(-30, 30), st.sampled_from([308, 309, -330, 400])),
    ),
    st.sampled_from(["-0", "-0.0", "0e5", "1E2", "1e+2", "2.5E-3", "NaN", "Infinity", "1e999"]),
)
junk_value = st.sampled_from(
    ["true", "false", "[]", "[1,2]", "{}", '{"a":1}', "01", "+1", ".5", "5.", "1e", "-", "nul",
     '"a\\"b"', '"\\u00e9"', '"\\ud800"', '"a\\tb"', '"\\n"', "-01", "1.0e", "0x10"]
)  # fmt: skip


@st.composite
def value_text(draw, name: str) -> str:
    typ = KINDS.get(name)
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return "null"
    if choice == 1:
        return draw(junk_value)
    if choice == 2:
        return json.dumps(draw(odd_text), ensure_ascii=draw(st.booleans()))
    if typ == pa.string() or (typ is None and choice < 5):
        return json.dumps(draw(plain_text))
    if typ == pa.int64() and choice < 8:
        return str(draw(ints))
    return draw(float_text)


@st.composite
def object_line(draw) -> str:
    names = draw(st.lists(st.sampled_from([*SCHEMA.names, "extra", "Page"]), max_size=13))
    parts = []
    for name in names:
        key = json.dumps(name) if draw(st.integers(0, 20)) else '"event\\u005fid"'
        parts.append(f"{draw(ws)}{key}{draw(ws)}:{draw(ws)}{draw(value_text(name))}{draw(ws)}")
    line = draw(ws) + "{" + ",".join(parts) + draw(ws) + "}" + draw(ws)
    damage = draw(st.integers(0, 12))
    if damage == 0:
        line = line[: draw(st.integers(0, max(len(line) - 1, 0)))]
    elif damage == 1:
        line = f"[{line}]"
    elif damage == 2:
        line = line + line
    elif damage == 3:
        line = line + draw(st.sampled_from([",", " x", "\x0c", "}", "\x00"]))
    return line


def encode(line: str, bad_utf8: bool) -> bytes:
    raw = line.encode("utf-8", "surrogatepass")
    if bad_utf8 and len(raw) > 2:
        return raw[:-2] + b"\xff" + raw[-2:]
    return raw


line_bytes = st.one_of(
    st.builds(encode, object_line(), st.integers(0, 4).map(lambda k: k == 0)),
    st.sampled_from([b"", b" ", b"\t\r", b'"scalar"', b"7", b"{", b"}", b"null"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(line_bytes, max_size=40),
    trailing=st.booleans(),
    split=st.booleans(),
)
def test_fast_path_matches_pyarrow_reference(lines, trailing, split):
    data = b"\n".join(lines) + (b"\n" if trailing and lines else b"")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jsonscan, "_SPLIT_BYTES", 0 if split else 1 << 30)  # small buffers split too
        assert_same(data)


def test_large_mixed_buffer_across_the_split():
    rng = random.Random(7)
    good = [
        json.dumps(
            {"event_id": f"S{i:016d}", "event_type": "play", "user_id": i, "item_id": 3,
             "author_id": 4, "event_time_ms": 1767229198680 + i, "report_time_ms": 1767229200000,
             "page": "feed", "watch_ms": rng.randrange(10**5), "gift_value": rng.random() * 100},
            separators=(",", ":"),
        )
        for i in range(20_000)
    ]  # fmt: skip
    bad = [b'{"event_id":"x","user_id":"u1"}', b"", b"{not json", b'{"page":"caf\xc3\xa9"}']
    lines = [g.encode() for g in good]
    for k in range(0, len(lines), 997):
        lines.insert(k, bad[k % len(bad)])
    data = b"\n".join(lines)
    assert len(data) > 2 * jsonscan._SPLIT_BYTES
    assert_same(data)
    assert_same(b"\n".join(g.encode() for g in good) + b"\n")


def test_decoded_values_and_flags():
    data = (
        b'{"event_id":"a","user_id":-0,"gift_value":-0.0,"watch_ms":null}\n'
        b'  {  "page" : "x" , "gift_value" : 2.5e-3 }  \r\n'
        b'{"event_id":"\\u0041"}\n'
        b"\n"
        b'{"user_id":1,"user_id":2}'
    )
    s = jsonscan.Scanner(SCHEMA, jsonscan.kinds_of(SCHEMA)).scan(data)
    ok, flagged, blank = jsonscan.OK, jsonscan.FLAGGED, jsonscan.BLANK
    assert s.status.tolist() == [ok, ok, flagged, blank, flagged]
    assert s.table.column("gift_value").to_pylist() == [-0.0, 0.0025]
    assert s.table.column("user_id").to_pylist() == [0, None]
    assert_same(data)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(
    ("data", "ids", "bad_line"),
    [
        (b'null\n{"event_id":"a"}', ["a"], 0),
        (b'{"event_id":"a"}\n null\n{"event_id":"b"}', ["a", "b"], 1),
    ],
)
def test_top_level_null_lines_are_malformed_not_a_crash(fast, data, ids, bad_line):
    # pyarrow crashes on a buffer starting with `null` and reads a later one as a row.
    got = parse_json_lines(data, SCHEMA, fast=fast)
    assert got.table.column("event_id").to_pylist() == ids
    assert [(line, reason) for line, reason, _ in got.bad] == [(bad_line, "malformed_json")]
