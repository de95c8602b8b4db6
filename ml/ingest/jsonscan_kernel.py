"""The numba kernel behind ``ml.ingest.jsonscan``: one pass over a range of JSON Lines.

Everything compiled lives in this one file on purpose: numba's on-disk cache
(``cache=True``) is invalidated by changes to the file of the cached function only, not
to the functions it calls from other files.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from ml import kernel_cache  # noqa: F401  (numba's cache: keyed by all kernel sources)

# Bytes the decoder compares against, by name (module constants: numba compiles them in).
NEWLINE, TAB, CR, SPACE = ord("\n"), ord("\t"), ord("\r"), ord(" ")
QUOTE, BACKSLASH = ord('"'), ord("\\")
LBRACE, RBRACE, COLON, COMMA = ord("{"), ord("}"), ord(":"), ord(",")
MINUS, PLUS, DOT, EXP_LOWER, EXP_UPPER = ord("-"), ord("+"), ord("."), ord("e"), ord("E")
DIGIT_0, DIGIT_9 = ord("0"), ord("9")
NULL_N, NULL_U, NULL_L = ord("n"), ord("u"), ord("l")
FIRST_PRINTABLE, FIRST_NON_ASCII = 0x20, 0x80

OK, FLAGGED, BLANK = 0, 1, 2  # line status
# The record schema as the kernel sees it (a namedtuple compiles to a plain struct):
# ``names`` all field names' bytes back to back, ``name_off`` where each starts; the
# first 32 bytes of ``<name>"`` as up to four little-endian words per field (``key_word``,
# ``key_mask``, ``key_words`` of them) for a whole-word key compare; per field its kind
# (STR | INT | FLT) and its slot among the fields of that kind; fields of each kind.
FieldTable = namedtuple(
    "FieldTable",
    ["names", "name_off", "key_word", "key_mask", "key_words", "kinds", "slots",
     "n_str", "n_int", "n_flt"],
)  # fmt: skip
# What one range decodes to: per line its bounds and status, and per OK line (``rows`` of
# them, in line order) its line and its values in per-kind column buffers (strings as
# Arrow offsets ``soff`` into ``sdata``, ``width`` bytes per string column; validity bits).
ScanOut = namedtuple(
    "ScanOut",
    ["lines", "starts", "ends", "status", "rows", "row_line", "ints", "flts", "soff", "sdata",
     "width", "valid", "nulls"],
)  # fmt: skip
STR, INT, FLT = 0, 1, 2  # field kinds
_MAX_INT_DIGITS = 18  # any 18-digit integer fits int64; longer ones go to pyarrow
_MAX_MANTISSA = np.uint64(1 << 53)  # Clinger's fast path: exact mantissa ...
_MAX_POW10 = 22  # ... times an exact power of ten is one correctly rounded operation
POW10 = np.array([10.0**k for k in range(_MAX_POW10 + 1)])
# Bytes the kernel copies as they are inside a string: printable ASCII except '"' and '\\'
# (control characters are invalid JSON, escapes and UTF-8 are left to pyarrow).
PLAIN = np.array(
    [FIRST_PRINTABLE <= c < FIRST_NON_ASCII and c not in (QUOTE, BACKSLASH) for c in range(256)],
    np.bool_,
)


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
# Eight ASCII digits to one number in three multiply-shift steps, each joining neighbours:
# pairs (a * 10 + b), then quads (ab * 100 + cd), then octets (abcd * 10^4 + efgh).
_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_BYTE_PAIRS = np.uint64(0x00FF00FF00FF00FF)
_HALF_WORDS = np.uint64(0x0000FFFF0000FFFF)
_JOIN_PAIRS = np.uint64(10 * 2**8 + 1)
_JOIN_QUADS = np.uint64(100 * 2**16 + 1)
_JOIN_OCTETS = np.uint64(10_000 * 2**32 + 1)


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
            while p < hi and DIGIT_0 <= buf[p] <= DIGIT_9 and nd <= 19:
                m = m * np.uint64(10) + np.uint64(buf[p] - DIGIT_0)
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
        v = ((v & _NIBBLES) * _JOIN_PAIRS) >> np.uint64(8)
        v = ((v & _BYTE_PAIRS) * _JOIN_QUADS) >> np.uint64(16)
        v = ((v & _HALF_WORDS) * _JOIN_OCTETS) >> np.uint64(32)
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
    return c == SPACE or c == TAB or c == CR  # noqa: SIM109, RUF100 (compiled: a tuple would be built)


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
def scan_range(buf, lo, hi, fields):
    """Decode lines of buf[lo:hi] (lo at a line start) of the ``FieldTable`` record into a
    ``ScanOut``: the line bounds and status per line, and per OK line the column buffers."""
    names, name_off, kinds, slots = fields.names, fields.name_off, fields.kinds, fields.slots
    kword, kmask, kcount = fields.key_word, fields.key_mask, fields.key_words
    n_str, n_int, n_flt = fields.n_str, fields.n_int, fields.n_flt
    pow10, plain = POW10, PLAIN
    n_nl = 0
    for i in range(lo, hi):
        n_nl += buf[i] == NEWLINE
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
        if p == hi or buf[p] == NEWLINE:
            st = BLANK
        elif buf[p] == LBRACE:
            p += 1
            while p < hi and _ws(buf[p]):
                p += 1
            if p < hi and buf[p] == RBRACE:  # '{}'
                p += 1
                st = OK
            while st == FLAGGED and p < hi and buf[p] == QUOTE:  # a key
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
                    if p == hi or buf[p] != QUOTE:
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
                if p == hi or buf[p] != COLON:
                    break
                p += 1
                while p < hi and _ws(buf[p]):
                    p += 1
                if p == hi:
                    break
                c = buf[p]
                kind = kinds[f]
                s = slots[f]
                if c == NULL_N:
                    if (
                        p + 4 > hi
                        or buf[p + 1] != NULL_U
                        or buf[p + 2] != NULL_L
                        or buf[p + 3] != NULL_L
                    ):
                        break
                    p += 4
                elif kind == STR:
                    if c != QUOTE:
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
                    if p == hi or buf[p] != QUOTE:
                        break
                    send[s] = w
                    p += 1
                    nonnull |= 1 << f
                else:
                    neg = c == MINUS
                    if neg:
                        p += 1
                    ds = p
                    p, m, nd = _digits(buf, p, hi, np.uint64(0), 0)
                    if nd == 0 or nd > 19 or (buf[ds] == DIGIT_0 and nd > 1):
                        break  # no digits, too many, or a leading zero (invalid JSON)
                    isfrac = p < hi and (
                        buf[p] == DOT or buf[p] == EXP_LOWER or buf[p] == EXP_UPPER
                    )
                    if kind == INT:
                        if isfrac or nd > _MAX_INT_DIGITS:
                            break
                        v = np.int64(m)
                        ints[s, row] = -v if neg else v
                    else:
                        e = 0
                        if p < hi and buf[p] == DOT:  # fraction digits
                            p += 1
                            fs = p
                            p, m, nd = _digits(buf, p, hi, m, nd)
                            if p == fs or nd > 19:
                                break
                            e = -(p - fs)
                        if p < hi and (buf[p] == EXP_LOWER or buf[p] == EXP_UPPER):
                            p += 1
                            eneg = False
                            if p < hi and (buf[p] == PLUS or buf[p] == MINUS):
                                eneg = buf[p] == MINUS
                                p += 1
                            es = p
                            x = 0
                            while p < hi and DIGIT_0 <= buf[p] <= DIGIT_9 and p - es < 5:
                                x = x * 10 + (buf[p] - DIGIT_0)
                                p += 1
                            if p == es or (p < hi and DIGIT_0 <= buf[p] <= DIGIT_9):
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
                if p < hi and buf[p] == COMMA:
                    p += 1
                    while p < hi and _ws(buf[p]):
                        p += 1
                elif p < hi and buf[p] == RBRACE:
                    p += 1
                    st = OK
                else:
                    break
            if st == OK:  # only whitespace may follow the object
                while p < hi and _ws(buf[p]):
                    p += 1
                if p < hi and buf[p] != NEWLINE:
                    st = FLAGGED
        while p < hi and buf[p] != NEWLINE:
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
    return ScanOut(
        line, starts, ends, status, row, row_line, ints, flts, soff, sdata, width, valid, nulls
    )
