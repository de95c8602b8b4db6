"""A compiled decoder for JSON Lines of one flat record schema (strings, int64, float64).

pyarrow's JSON reader is general (any nesting, type inference, unicode escapes) and
costs most of ingestion. Landing lines are flat objects of short ASCII strings and
integers, so this kernel recognises exactly that shape in one pass and writes Arrow
column buffers directly. It only accepts a line when it is certain what pyarrow would
make of it; anything else — escapes, non-ASCII bytes, unknown or repeated keys, nested
values, true/false/NaN, numbers it cannot convert exactly — is flagged, and the caller
hands those lines to pyarrow (``ml.data.jsonl``). So the typed values are pyarrow's by
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
from llvmlite import ir
from numba import njit, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

OK, FLAGGED, BLANK = 0, 1, 2
STR, INT, FLT = 0, 1, 2
_MAX_INT_DIGITS = 18  # any 18-digit integer fits int64; longer ones go to pyarrow
_MAX_MANTISSA = np.uint64(1 << 53)  # Clinger's fast path: exact mantissa ...
_MAX_POW10 = 22  # ... times an exact power of ten is one correctly rounded operation
_POW10 = np.array([10.0**k for k in range(_MAX_POW10 + 1)])
# Bytes the kernel copies as they are inside a string: printable ASCII except '"' and '\\'
# (control characters are invalid JSON, escapes and UTF-8 are left to pyarrow).
_PLAIN = np.array([32 <= c < 128 and c not in (34, 92) for c in range(256)], np.bool_)
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


@intrinsic
def _load8(typingctx, arr, i):
    """Eight bytes of a uint8 array from index i as one little-endian uint64 (unaligned
    load; the caller keeps i + 8 within the array)."""

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(ptr, align=1)

    return types.uint64(arr, types.intp), codegen


@intrinsic
def _store8(typingctx, arr, i, v):
    """Store a uint64 into a uint8 array at index i (unaligned; i + 8 within the array)."""

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(64).as_pointer())
        builder.store(args[2], ptr, align=1)
        return context.get_dummy_value()

    return types.void(arr, types.intp, types.uint64), codegen


# Byte-parallel (SWAR) constants: eight bytes of a line are classified in one step.
_HIGH = np.uint64(0x8080808080808080)
_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_ONES = np.uint64(0x0101010101010101)
_ZEROS = np.uint64(0x3030303030303030)  # '0' x 8
_ABOVE_9 = np.uint64(0x4646464646464646)  # + this sets the high bit of bytes > '9'
_FROM_0 = np.uint64(0x5050505050505050)  # + this sets the high bit of bytes >= '0'
_QUOTES = np.uint64(0x2222222222222222)
_BACKSLASHES = np.uint64(0x5C5C5C5C5C5C5C5C)
_SPACES = np.uint64(0x2020202020202020)
_U10 = np.array([10**k for k in range(9)], np.uint64)


@njit(nogil=True, cache=True, inline="always")
def _first(mask):
    """Index of the first flagged byte (high bit set) of a SWAR mask, 8 if none."""
    return 8 if mask == 0 else np.int64(trailing_zeros(mask)) >> 3


@njit(nogil=True, cache=True, inline="always")
def _digits(buf, p, hi, m, nd):
    """Accumulate the decimal digits at buf[p:] into m (uint64), eight at a time;
    stops at a non-digit or once more than 19 digits are read (then m is garbage)."""
    while nd <= 19:
        if p + 8 > hi:  # the last bytes of the range: one at a time
            while p < hi and 48 <= buf[p] <= 57 and nd <= 19:
                m = m * np.uint64(10) + np.uint64(buf[p] - 48)
                p += 1
                nd += 1
            return p, m, nd
        x = _load8(buf, p)
        low = x & _LOW7
        k = _first((~(low + _FROM_0) | (low + _ABOVE_9) | x) & _HIGH)
        if k == 0:
            return p, m, nd
        # The k digits to the top bytes (leading zeros below), then pairwise combined.
        v = (x - _ZEROS) << np.uint64(8 * (8 - k))
        v = ((v & np.uint64(0x0F0F0F0F0F0F0F0F)) * np.uint64(2561)) >> np.uint64(8)
        v = ((v & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(6553601)) >> np.uint64(16)
        v = ((v & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(42949672960001)) >> np.uint64(32)
        m = m * _U10[k] + v
        p += k
        nd += k
        if k < 8:
            return p, m, nd
    return p, m, nd


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


@njit(nogil=True, cache=True, inline="always")
def _ws(c):
    # JSON whitespace inside a line ('\n' ends the line, so it is not skipped).
    return c == 32 or c == 9 or c == 13


@njit(nogil=True, cache=True)
def _find_key(buf, ks, klen, names, name_off):
    for j in range(len(name_off) - 1):
        if name_off[j + 1] - name_off[j] == klen:
            same = True
            for t in range(klen):
                if buf[ks + t] != names[name_off[j] + t]:
                    same = False
                    break
            if same:
                return j
    return -1


@njit(nogil=True, cache=True)
def _scan(
    buf, lo, hi, names, name_off, kword, kmask, kcount, kinds, slots, n_str, n_int, n_flt,
    pow10, plain,
):  # fmt: skip
    """Decode lines of buf[lo:hi] (lo at a line start). Returns the line bounds and
    status per line, and per OK line (rows, in line order) the column buffers."""
    n_nl = 0
    for i in range(lo, hi):
        n_nl += buf[i] == 10
    cap = n_nl + 1
    nf = len(kinds)
    starts = np.empty(cap, np.int64)
    ends = np.empty(cap, np.int64)
    status = np.empty(cap, np.int8)
    row_line = np.empty(cap, np.int64)
    ints = np.empty((max(n_int, 1), cap), np.int64)
    flts = np.empty((max(n_flt, 1), cap), np.float64)
    soff = np.empty((max(n_str, 1), cap + 1), np.int32)
    width = hi - lo + 8  # per string column; 8 bytes of slack for whole-word stores
    sdata = np.empty(max(n_str, 1) * width, np.uint8)
    valid = np.zeros((nf, cap // 8 + 1), np.uint8)
    nulls = np.zeros(nf, np.int64)
    send = np.zeros(max(n_str, 1), np.int32)  # tentative string ends of the current line
    soff[:, 0] = 0
    nxt = np.zeros(nf + 1, np.int64)  # key order is usually the same on every line
    row = 0
    line = 0
    p = lo
    while p < hi:
        starts[line] = p
        st = FLAGGED
        prev = nf  # the line start, in the key-order table nxt
        present = 0  # keys seen (a repeated key is for pyarrow to judge)
        nonnull = 0
        while p < hi and _ws(buf[p]):
            p += 1
        if p == hi or buf[p] == 10:
            st = BLANK
        elif buf[p] == 123:  # '{'
            p += 1
            while p < hi and _ws(buf[p]):
                p += 1
            if p < hi and buf[p] == 125:  # '{}'
                p += 1
                st = OK
            while st == FLAGGED and p < hi and buf[p] == 34:  # a key
                ks = p + 1
                # Most lines repeat the previous line's key order: compare the key that
                # followed the previous key last time in one pass, else search all keys.
                f = nxt[prev]
                n = name_off[f + 1] - name_off[f]
                p = ks
                if kcount[f] and ks + 8 * kcount[f] <= hi:
                    for k in range(kcount[f]):
                        if _load8(buf, ks + 8 * k) & kmask[f, k] != kword[f, k]:
                            break
                    else:
                        p = ks + n
                if p != ks + n or p == ks:
                    p = ks
                    while p < hi and plain[buf[p]]:
                        p += 1
                    if p == hi or buf[p] != 34:
                        break
                    f = _find_key(buf, ks, p - ks, names, name_off)
                if f < 0 or present & (1 << f):
                    break
                present |= 1 << f
                nxt[prev] = f
                prev = f
                p += 1
                while p < hi and _ws(buf[p]):
                    p += 1
                if p == hi or buf[p] != 58:  # ':'
                    break
                p += 1
                while p < hi and _ws(buf[p]):
                    p += 1
                if p == hi:
                    break
                c = buf[p]
                kind = kinds[f]
                s = slots[f]
                if c == 110:  # null
                    if p + 4 > hi or buf[p + 1] != 117 or buf[p + 2] != 108 or buf[p + 3] != 108:
                        break
                    p += 4
                elif kind == STR:
                    if c != 34:
                        break
                    p += 1
                    w = soff[s, row]
                    base = s * width
                    while p + 8 <= hi:  # copied as scanned, eight bytes at a time
                        x = _load8(buf, p)
                        q, b = x ^ _QUOTES, x ^ _BACKSLASHES
                        k = _first(
                            (((q - _ONES) & ~q) | ((b - _ONES) & ~b) | ((x - _SPACES) & ~x) | x)
                            & _HIGH
                        )  # the first '"', '\\', control or non-ASCII byte
                        _store8(sdata, base + w, x)
                        w += k
                        p += k
                        if k < 8:
                            break
                    else:
                        while p < hi and plain[buf[p]]:
                            sdata[base + w] = buf[p]
                            w += 1
                            p += 1
                    if p == hi or buf[p] != 34:
                        break
                    send[s] = w
                    p += 1
                    nonnull |= 1 << f
                else:
                    neg = c == 45  # '-'
                    if neg:
                        p += 1
                    ds = p
                    p, m, nd = _digits(buf, p, hi, np.uint64(0), 0)
                    if nd == 0 or nd > 19 or (buf[ds] == 48 and nd > 1):
                        break  # no digits, too many, or a leading zero (invalid JSON)
                    isfrac = p < hi and (buf[p] == 46 or buf[p] == 101 or buf[p] == 69)
                    if kind == INT:
                        if isfrac or nd > _MAX_INT_DIGITS:
                            break
                        v = np.int64(m)
                        ints[s, row] = -v if neg else v
                    else:
                        e = 0
                        if p < hi and buf[p] == 46:  # '.': fraction digits
                            p += 1
                            fs = p
                            p, m, nd = _digits(buf, p, hi, m, nd)
                            if p == fs or nd > 19:
                                break
                            e = -(p - fs)
                        if p < hi and (buf[p] == 101 or buf[p] == 69):  # exponent
                            p += 1
                            eneg = False
                            if p < hi and (buf[p] == 43 or buf[p] == 45):
                                eneg = buf[p] == 45
                                p += 1
                            es = p
                            x = 0
                            while p < hi and 48 <= buf[p] <= 57 and p - es < 5:
                                x = x * 10 + (buf[p] - 48)
                                p += 1
                            if p == es or (p < hi and 48 <= buf[p] <= 57):
                                break
                            e += -x if eneg else x
                        if m == 0:
                            val = 0.0
                        elif m >= _MAX_MANTISSA or e > _MAX_POW10 or e < -_MAX_POW10:
                            break
                        elif e >= 0:
                            val = np.float64(m) * pow10[e]
                        else:
                            val = np.float64(m) / pow10[-e]
                        flts[s, row] = -val if neg else val
                    nonnull |= 1 << f
                while p < hi and _ws(buf[p]):
                    p += 1
                if p < hi and buf[p] == 44:  # ','
                    p += 1
                    while p < hi and _ws(buf[p]):
                        p += 1
                elif p < hi and buf[p] == 125:  # '}'
                    p += 1
                    st = OK
                else:
                    break
            if st == OK:  # only whitespace may follow the object
                while p < hi and _ws(buf[p]):
                    p += 1
                if p < hi and buf[p] != 10:
                    st = FLAGGED
        while p < hi and buf[p] != 10:
            p += 1
        ends[line] = p
        status[line] = st
        if st == OK:
            for j in range(nf):
                s = slots[j]
                if nonnull & (1 << j):
                    valid[j, row >> 3] |= np.uint8(1 << (row & 7))
                    if kinds[j] == STR:
                        soff[s, row + 1] = send[s]
                else:
                    nulls[j] += 1
                    if kinds[j] == STR:
                        soff[s, row + 1] = soff[s, row]
                    elif kinds[j] == INT:
                        ints[s, row] = 0
                    else:
                        flts[s, row] = 0.0
            row_line[row] = line
            row += 1
        line += 1
        p += 1  # past the newline
    return line, starts, ends, status, row, row_line, ints, flts, soff, sdata, width, valid, nulls


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

    def _run(self, buf: np.ndarray, lo: int, hi: int):
        n_str, n_int, n_flt = self.counts
        return _scan(
            buf, lo, hi, self.names, self.name_off, *self.key_words, self.kinds, self.slots,
            n_str, n_int, n_flt, _POW10, _PLAIN,
        )  # fmt: skip

    def _batch(self, out) -> pa.RecordBatch:
        _, _, _, _, rows, _, ints, flts, soff, sdata, width, valid, nulls = out
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
            lines, s, e, st, rows, rl = out[:6]
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
