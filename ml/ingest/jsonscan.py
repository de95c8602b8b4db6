"""A compiled decoder for JSON Lines of one flat record schema (strings, int64, float64).

pyarrow's JSON reader is general (any nesting, type inference, unicode escapes) and
costs most of ingestion. Landing lines are flat objects of short ASCII strings and
integers, so this kernel recognises exactly that shape in one pass and writes Arrow
column buffers directly. It only accepts a line when it is certain what pyarrow would
make of it; anything else — escapes, non-ASCII bytes, unknown or repeated keys, nested
values, true/false/NaN, numbers it cannot convert exactly — is flagged, and the caller
hands those lines to pyarrow (``ml.ingest.jsonl``). So the typed values are pyarrow's by
construction, not by imitation of its error messages.

Per line the kernel reports a status: OK (a row was written), FLAGGED (undecided) or
BLANK (empty or whitespace-only). It runs without the GIL, so a buffer is split in
two halves decoded on two threads.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ml.ingest.jsonscan_kernel import (
    BLANK,
    FLAGGED,
    FLT,
    INT,
    OK,
    STR,
    FieldTable,
    ScanOut,
    scan_range,
)

__all__ = ["BLANK", "FLAGGED", "OK", "Scanned", "Scanner", "kinds_of"]
_SPLIT_BYTES = 1 << 20  # below this one thread is cheaper than two


def kinds_of(schema: pa.Schema) -> np.ndarray | None:
    """Kernel kind per field, or None when a field type is not one the kernel decodes."""
    kinds = []
    for f in schema:
        if not f.name.isascii() or not f.name.isidentifier():
            return None  # keys are compared as raw bytes: only names JSON cannot escape
        if f.type == pa.string():
            kinds.append(STR)
        elif f.type == pa.int64():
            kinds.append(INT)
        elif f.type == pa.float64():
            kinds.append(FLT)
        else:
            return None
    return np.array(kinds, np.int8)


def _key_words(schema: pa.Schema) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per field, its name and closing quote as up to 4 masked little-endian words, so a
    predicted key is checked 8 bytes at a time (longer names use the byte loop)."""
    words = np.zeros((len(schema), 4), np.uint64)
    masks = np.zeros((len(schema), 4), np.uint64)
    count = np.zeros(len(schema), np.int64)
    for j, f in enumerate(schema):
        pattern = f.name.encode() + b'"'
        if len(pattern) > 32:
            continue
        count[j] = -(-len(pattern) // 8)
        for k in range(count[j]):
            part = pattern[8 * k : 8 * k + 8]
            words[j, k] = int.from_bytes(part, "little")
            masks[j, k] = (1 << (8 * len(part))) - 1
    return words, masks, count


@dataclass
class Scanned:
    """Kernel output for one buffer: line bounds and status, and the OK lines as a table."""

    starts: np.ndarray
    ends: np.ndarray
    status: np.ndarray  # int8 per line: OK, FLAGGED or BLANK
    table: pa.Table  # one row per OK line, in line order
    row_line: np.ndarray  # int64 per row: its line index


class Scanner:
    def __init__(self, schema: pa.Schema, kinds: np.ndarray):
        self.schema = schema
        self.kinds = kinds
        encoded = [f.name.encode() for f in schema]
        self.names = np.frombuffer(b"".join(encoded), np.uint8)
        self.name_off = np.cumsum([0] + [len(n) for n in encoded]).astype(np.int64)
        self.key_words = _key_words(schema)
        self.slots = np.zeros(len(kinds), np.int64)
        self.counts = [0, 0, 0]
        for j, k in enumerate(kinds):
            self.slots[j] = self.counts[k]
            self.counts[k] += 1
        self.fields = FieldTable(
            self.names, self.name_off, *self.key_words, self.kinds, self.slots, *self.counts
        )

    def _run(self, buf: np.ndarray, lo: int, hi: int) -> ScanOut:
        return scan_range(buf, lo, hi, self.fields)

    def _batch(self, out: ScanOut) -> pa.RecordBatch:
        rows, ints, flts, soff, sdata = out.rows, out.ints, out.flts, out.soff, out.sdata
        width, valid, nulls = out.width, out.valid, out.nulls
        arrays = []
        nbytes = (rows + 7) // 8
        for j, f in enumerate(self.schema):
            s, k = int(self.slots[j]), self.kinds[j]
            vbuf = pa.py_buffer(valid[j, :nbytes]) if nulls[j] else None
            if k == STR:
                end = int(soff[s, rows])
                bufs = [
                    vbuf,
                    pa.py_buffer(soff[s, : rows + 1]),
                    pa.py_buffer(sdata[s * width : s * width + end]),
                ]
            elif k == INT:
                bufs = [vbuf, pa.py_buffer(ints[s, :rows])]
            else:
                bufs = [vbuf, pa.py_buffer(flts[s, :rows])]
            arrays.append(pa.Array.from_buffers(f.type, rows, bufs, null_count=int(nulls[j])))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def scan(self, data: bytes) -> Scanned:
        buf = np.frombuffer(data, np.uint8)
        n = len(buf)
        cut = data.find(b"\n", n // 2) + 1 if n >= _SPLIT_BYTES else 0
        if 0 < cut < n:  # the second half on a worker thread, the first on this one
            with ThreadPoolExecutor(max_workers=1) as pool:
                second = pool.submit(self._run, buf, cut, n)
                halves = [self._run(buf, 0, cut), second.result()]
        else:
            halves = [self._run(buf, 0, n)]
        base = 0
        starts, ends, status, row_line, batches = [], [], [], [], []
        for out in halves:
            lines, rows = out.lines, out.rows
            s, e, st, rl = out.starts, out.ends, out.status, out.row_line
            starts.append(s[:lines])
            ends.append(e[:lines])
            status.append(st[:lines])
            row_line.append(rl[:rows] + base)
            batches.append(self._batch(out))
            base += lines
        return Scanned(
            np.concatenate(starts),
            np.concatenate(ends),
            np.concatenate(status),
            pa.Table.from_batches(batches, schema=self.schema),
            np.concatenate(row_line),
        )
