"""The numba kernel behind ``ml.data.jsonscan``: one pass over a range of JSON Lines.

Everything compiled lives in this one file on purpose: numba's on-disk cache
(``cache=True``) is invalidated by changes to the file of the cached function only, not
to the functions it calls from other files.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from ml.data import kernel_cache  # noqa: F401  (numba's cache: keyed by all kernel sources)

OK, FLAGGED, BLANK = 0, 1, 2  # line status
STR, INT, FLT = 0, 1, 2  # field kinds
_MAX_INT_DIGITS = 18  # any 18-digit integer fits int64; longer ones go to pyarrow
_MAX_MANTISSA = np.uint64(1 << 53)  # Clinger's fast path: exact mantissa ...
_MAX_POW10 = 22  # ... times an exact power of ten is one correctly rounded operation
POW10 = np.array([10.0**k for k in range(_MAX_POW10 + 1)])
# Bytes the kernel copies as they are inside a string: printable ASCII except '"' and '\\'
# (control characters are invalid JSON, escapes and UTF-8 are left to pyarrow).
PLAIN = np.array([32 <= c < 128 and c not in (34, 92) for c in range(256)], np.bool_)


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


@njit(nogil=True, cache=True, inline="always")
def _ws(c):
    # JSON whitespace inside a line ('\n' ends the line, so it is not skipped).
    # The skip loops below are written out: a ``p = skip(buf, p, hi)`` helper, even
    # inlined, made the whole decoder ~30 % slower (bench/ingest.py, 1.2M vs 1.7M/s).
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
def scan_range(
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
