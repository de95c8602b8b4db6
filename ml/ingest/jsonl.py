"""Fast, loss-free JSON Lines parsing: every line becomes a typed row or a reason.

pyarrow's JSON reader is all-or-nothing: one bad line fails the whole block, and it
silently skips blank lines. The reference algorithm (``fast=False``) is:

1. clean file (the common case): one multi-threaded ``pyarrow.json.read_json`` over the
   whole buffer; row i is line i (verified by count);
2. otherwise: parse chunks of lines; a failing chunk is bisected until the bad lines are
   isolated, and each isolated line is classified in Python (malformed JSON vs wrong
   type). Cost grows with the number of bad lines, not with the file.

The default path gets the same result faster: a compiled decoder (``ml.ingest.jsonscan``)
types every plain line of a flat schema itself and flags the rest; only flagged lines
are given to pyarrow, following the reference's steps and chunk layout exactly. Lines the
decoder accepts are lines pyarrow accepts with the same values, so a chunk of the
reference fails exactly when its flagged lines fail, and the outcome is the same.
"""

from __future__ import annotations

import io
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from ml.ingest.jsonscan import BLANK, FLAGGED, Scanned, Scanner, kinds_of
from ml.ingest.text import invalid_text_lines

_WS = b" \t\r\n"
_CHUNK_LINES = 512
_BLOCK = 1 << 22
_LEAF_LINES = 16  # below this, judging lines in Python beats more pyarrow calls
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass
class ParsedLines:
    """The outcome of parsing one buffer of JSON Lines."""

    table: pa.Table  # one row per parsed line, in line order
    row_line: np.ndarray  # int64 [rows]: 0-based line index of each row
    starts: np.ndarray  # int64 [lines]: byte offset where each line starts
    ends: np.ndarray  # int64 [lines]: byte offset where each line ends (newline excluded)
    bad: list[tuple[int, str, str]] = field(default_factory=list)  # (line index, reason, detail)

    @property
    def n_lines(self) -> int:
        return len(self.starts)

    def raw_line(self, data: bytes, line: int) -> bytes:
        return data[self.starts[line] : self.ends[line]]


def count_lines(data: bytes) -> int:
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def line_bounds(data: bytes, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) byte offsets of every line; ends exclude the newline."""
    arr = np.frombuffer(data, dtype=np.uint8)
    # Chunks that fit in cache: one big `arr == 10` is ~8x slower (page faults on the mask).
    parts = [np.flatnonzero(arr[o : o + chunk] == 10) + o for o in range(0, len(arr), chunk)]
    nl = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    starts = np.concatenate((np.zeros(1, np.int64), nl + 1))
    ends = np.concatenate((nl, np.array([len(arr)], np.int64)))
    if starts[-1] == len(arr):  # trailing newline (or empty data): no last line
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


def blank_lines(data: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Indices of empty or whitespace-only lines (pyarrow skips those silently)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    empty = ends == starts
    first = arr[np.minimum(starts, max(len(arr) - 1, 0))] if len(arr) else np.zeros(0, np.uint8)
    suspect = np.flatnonzero(~empty & np.isin(first, np.frombuffer(_WS, np.uint8)))
    ws_only = [i for i in suspect if not data[starts[i] : ends[i]].strip(_WS)]
    return np.union1d(np.flatnonzero(empty), np.asarray(ws_only, np.int64)).astype(np.int64)


def not_objects(data: bytes, starts: np.ndarray, ends: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """The non-blank ``lines`` whose first non-blank byte is not '{' (not JSON objects).

    Such lines never reach pyarrow: classify_line rejects them all, and pyarrow 26
    crashes (SIGSEGV, apache/arrow#47409) on a buffer starting with a top-level ``null``
    while taking a later ``null`` line for a row of nulls."""
    arr = np.frombuffer(data, np.uint8)
    lines = lines[ends[lines] > starts[lines]]
    first = arr[starts[lines]]
    out = lines[first != ord("{")]
    padded = out[np.isin(first[first != ord("{")], np.frombuffer(_WS, np.uint8))]
    fine = [i for i in padded if data[starts[i] : ends[i]].lstrip(_WS)[:1] in (b"{", b"")]
    return np.setdiff1d(out, np.asarray(fine, np.int64), assume_unique=True)


def parse_json_lines(data: bytes, schema: pa.Schema, *, fast: bool = True) -> ParsedLines:
    """Parse ``data`` (UTF-8 JSON Lines) against ``schema``; never raises on content.

    Lines that are not valid text (``ml.ingest.text``) are ``invalid_utf8``: the parser
    sees them blanked (same offsets, so every other line keeps its place) and never
    reads their bytes. fast=False runs the pure pyarrow reference algorithm (same result,
    slower)."""
    invalid = {}
    if not data.isascii() or b"\\u" in data:
        invalid = invalid_text_lines(data, *line_bounds(data))
    if invalid:
        data = _blanked(data, invalid)
    scanner = _scanner(schema) if fast else None
    parsed = (
        _parse_reference(data, schema)
        if scanner is None
        else _finish(data, schema, scanner.scan(data))
    )
    if invalid:
        parsed.bad = sorted(
            (i, "invalid_utf8", invalid[i]) if i in invalid else (i, r, d) for i, r, d in parsed.bad
        )
    return parsed


def _blanked(data: bytes, lines: dict[int, str]) -> bytes:
    """``data`` with the given lines overwritten by spaces (a blank line to the parser)."""
    starts, ends = line_bounds(data)
    buf = bytearray(data)
    for i in lines:
        buf[starts[i] : ends[i]] = b" " * int(ends[i] - starts[i])
    return bytes(buf)


_SCANNERS: dict[pa.Schema, Scanner | None] = {}


def _scanner(schema: pa.Schema) -> Scanner | None:
    if schema not in _SCANNERS:
        kinds = kinds_of(schema)
        _SCANNERS[schema] = None if kinds is None else Scanner(schema, kinds)
    return _SCANNERS[schema]


def _finish(data: bytes, schema: pa.Schema, s: Scanned) -> ParsedLines:
    """The reference algorithm's steps, with pyarrow reading only the flagged lines."""
    starts, ends, status = s.starts, s.ends, s.status
    flagged = status == FLAGGED
    blank = np.flatnonzero(status == BLANK)
    todo = np.flatnonzero(flagged)
    if len(todo) == 0 and len(blank) == 0:
        return ParsedLines(s.table, s.row_line, starts, ends)
    extra: list[tuple[np.ndarray, pa.Table]] = []
    bad: list[tuple[int, str, str]] = []
    if len(blank) == 0 and not len(not_objects(data, starts, ends, todo)):
        # step 1: the whole buffer parses iff its flagged lines do
        table = _try_read(_join_lines(data, starts, ends, todo), schema, len(todo), threads=True)
        if table is not None:
            return _merged(s, [(todo, table)], bad)
    bad = [(int(i), "empty_line", "blank or whitespace-only line") for i in blank]
    keep = status != BLANK
    # The structural pre-screen: decoded lines are objects of the schema's types, which
    # classify_line accepts, so only flagged lines can be set aside here.
    arr = np.frombuffer(data, np.uint8)
    suspect = todo[(arr[starts[todo]] != ord("{")) | (arr[ends[todo] - 1] != ord("}"))]
    _set_aside(data, schema, starts, ends, suspect, keep, bad)
    lines = np.flatnonzero(keep)
    todo = lines[flagged[lines]]
    if len(todo) == 0:  # the rest is decoded: the reference's read of it succeeds
        return _merged(s, extra, bad)
    table = _try_read(_join_lines(data, starts, ends, todo), schema, len(todo), threads=True)
    if table is not None:
        extra.append((todo, table))
    else:
        got, rejected = _bisect_like_reference(data, schema, starts, ends, lines, flagged, todo)
        extra.extend(got)
        bad.extend(rejected)
    return _merged(s, extra, bad)


def _bisect_like_reference(data, schema, starts, ends, lines, flagged, todo):
    """The reference's chunking and bisection (``_parse_part``), decided without reading
    chunks: pyarrow reads a group of lines iff it reads each line on its own, so one read
    per flagged line tells which parts of the reference's search would parse."""
    one = {int(i): _try_read(data[starts[i] : ends[i]], schema, 1, threads=False) for i in todo}
    got: list[tuple[np.ndarray, pa.Table]] = []
    bad: list[tuple[int, str, str]] = []
    for c in range(0, len(lines), _CHUNK_LINES):
        stack = [lines[c : c + _CHUNK_LINES]]
        while stack:
            part = stack.pop()
            fl = part[flagged[part]]
            if all(one[int(i)] is not None for i in fl):
                got.extend((np.array([i], np.int64), one[int(i)]) for i in fl)
            elif len(part) <= _LEAF_LINES:
                for i in fl:
                    verdict = classify_line(data[starts[i] : ends[i]], schema)
                    if verdict is None and one[int(i)] is not None:
                        got.append((np.array([i], np.int64), one[int(i)]))
                        continue
                    if verdict is None:
                        verdict = ("malformed_json", "rejected by the JSON reader (invalid text)")
                    bad.append((int(i), *verdict))
            else:
                mid = len(part) // 2
                stack.append(part[mid:])
                stack.append(part[:mid])
    return got, bad


def _merged(s: Scanned, extra: list[tuple[np.ndarray, pa.Table]], bad: list) -> ParsedLines:
    """Decoded rows and pyarrow's rows of flagged lines, in line order."""
    extra = [(ix, t) for ix, t in extra if len(ix)]
    table, row_line = s.table, s.row_line
    if extra:
        row_line = np.concatenate([row_line] + [ix for ix, _ in extra])
        order = np.argsort(row_line, kind="stable")
        table = pa.concat_tables([table] + [t for _, t in extra]).take(pa.array(order))
        row_line = row_line[order]
    bad.sort()
    return ParsedLines(table, row_line, s.starts, s.ends, bad)


def _set_aside(data, schema, starts, ends, suspect, keep, bad) -> None:
    """Judge each suspect line alone; the bad ones go to ``bad`` and out of ``keep``."""
    for i in suspect:
        verdict = classify_line(data[starts[i] : ends[i]], schema)
        if verdict is not None:
            bad.append((int(i), *verdict))
            keep[i] = False


def _parse_reference(data: bytes, schema: pa.Schema) -> ParsedLines:
    starts, ends = line_bounds(data)
    n_lines = len(starts)
    if n_lines == 0:
        return ParsedLines(schema.empty_table(), np.zeros(0, np.int64), starts, ends)
    blank = blank_lines(data, starts, ends)
    if len(blank) == 0 and not len(not_objects(data, starts, ends, np.arange(n_lines))):
        # Rows == lines and no blank line: row i is line i (a line holding two objects
        # would make rows > lines and take the slow path).
        table = _try_read(data, schema, n_lines, threads=True)
        if table is not None:
            return ParsedLines(table, np.arange(n_lines, dtype=np.int64), starts, ends)
    bad = [(int(i), "empty_line", "blank or whitespace-only line") for i in blank]
    keep = np.ones(n_lines, bool)
    keep[blank] = False
    # Most damage is structural (a truncated line, an array): such lines do not start
    # with '{' and end with '}'. Set them aside cheaply, then parse the rest in one go.
    arr = np.frombuffer(data, np.uint8)
    nonempty = ends > starts
    first = np.zeros(n_lines, np.uint8)
    last = np.zeros(n_lines, np.uint8)
    first[nonempty] = arr[starts[nonempty]]
    last[nonempty] = arr[ends[nonempty] - 1]
    suspect = np.flatnonzero(keep & ((first != ord("{")) | (last != ord("}"))))
    _set_aside(data, schema, starts, ends, suspect, keep, bad)
    lines = np.flatnonzero(keep)
    pieces: list[tuple[np.ndarray, pa.Table]] = []
    table = _try_read(_join_lines(data, starts, ends, lines), schema, len(lines), threads=True)
    if table is not None:
        pieces.append((lines, table))
    else:
        chunks = [lines[c : c + _CHUNK_LINES] for c in range(0, len(lines), _CHUNK_LINES)]
        with ThreadPoolExecutor(max_workers=2) as pool:  # pyarrow releases the GIL
            for got, rejected in pool.map(
                lambda part: _parse_part(data, schema, starts, ends, part), chunks
            ):
                pieces.extend(got)
                bad.extend(rejected)
    if pieces:
        table = pa.concat_tables([t for _, t in pieces])
        row_line = np.concatenate([ix for ix, _ in pieces])
    else:
        table, row_line = schema.empty_table(), np.zeros(0, np.int64)
    bad.sort()
    return ParsedLines(table, row_line, starts, ends, bad)


def _join_lines(data: bytes, starts: np.ndarray, ends: np.ndarray, lines: np.ndarray) -> bytes:
    """The given lines as one buffer, copying whole runs of consecutive lines at once."""
    if len(lines) == 0:
        return b""
    breaks = np.flatnonzero(np.diff(lines) != 1)
    run_first = np.concatenate(([lines[0]], lines[breaks + 1]))
    run_last = np.concatenate((lines[breaks], [lines[-1]]))
    return b"\n".join(data[starts[a] : ends[b]] for a, b in zip(run_first, run_last, strict=True))


def _parse_part(data, schema, starts, ends, lines):
    """Parse ``lines`` (sorted, non-blank); bisect failures down to a few lines, which
    are then judged one by one. Returns ([(line indices, table)], [(line, reason, detail)])."""
    got: list[tuple[np.ndarray, pa.Table]] = []
    bad: list[tuple[int, str, str]] = []
    stack = [lines]
    while stack:
        part = stack.pop()
        table = _try_read(_join_lines(data, starts, ends, part), schema, len(part), threads=False)
        if table is not None:
            got.append((part, table))
        elif len(part) <= _LEAF_LINES:
            ok = []
            for i in part:
                verdict = classify_line(data[starts[i] : ends[i]], schema)
                if verdict is None:  # Python accepts it: let pyarrow have the last word
                    one = _try_read(data[starts[i] : ends[i]], schema, 1, threads=False)
                    if one is not None:
                        ok.append((np.array([i], np.int64), one))
                        continue
                    verdict = ("malformed_json", "rejected by the JSON reader (invalid text)")
                bad.append((int(i), *verdict))
            got.extend(ok)
        else:
            mid = len(part) // 2
            stack.append(part[mid:])
            stack.append(part[:mid])  # popped first: depth-first in line order
    return got, bad


def _try_read(buf: bytes, schema: pa.Schema, expected_rows: int, threads: bool) -> pa.Table | None:
    # A buffer shorter than the 4 MiB block is one block whatever the block size, so a
    # small one gets a small block: most of a small read's cost is allocating the block.
    block = _BLOCK if len(buf) >= _BLOCK else max(1 << 12, 1 << len(buf).bit_length())
    try:
        table = pj.read_json(
            io.BytesIO(buf),
            read_options=pj.ReadOptions(use_threads=threads, block_size=block),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except Exception:
        return None
    if table.num_rows != expected_rows:  # e.g. two objects on one line
        return None
    return table.select(schema.names)


def classify_line(line: bytes, schema: pa.Schema) -> tuple[str, str] | None:
    """(reason, detail) if a single line is not a JSON object of the schema's types
    (``malformed_json`` or ``wrong_type``), else None."""
    try:
        obj = json.loads(line, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _DuplicateKey as e:
        return "malformed_json", f"ambiguous object: key {e.args[0]!r} appears twice"
    except RecursionError:
        return "malformed_json", "nested too deep to be an event (a flat JSON object)"
    except (ValueError, UnicodeDecodeError) as e:
        return "malformed_json", f"not valid JSON: {e}"[:200]
    if not isinstance(obj, dict):
        return "malformed_json", f"a JSON {type(obj).__name__}, not an object"
    for f in schema:
        if f.name not in obj or obj[f.name] is None:
            continue
        v = obj[f.name]
        if pa.types.is_string(f.type):
            ok = isinstance(v, str)
        elif pa.types.is_integer(f.type):
            ok = isinstance(v, int) and not isinstance(v, bool) and _INT64_MIN <= v <= _INT64_MAX
        elif pa.types.is_floating(f.type):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if ok and not _finite_float(v):
                return "wrong_type", f"{f.name}: a number beyond the range of {f.type}"
        else:
            ok = True
        if not ok:
            return (
                "wrong_type",
                f"{f.name}: expected {f.type}, got {type(v).__name__} {str(v)[:40]!r}",
            )
    return None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(v: int | float) -> bool:
    """A number a JSON float column can hold: finite once in float64 (1e400 parses as inf
    in Python, 10**400 does not fit at all)."""
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False
