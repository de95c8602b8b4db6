"""Lines that are not valid text: invalid UTF-8 bytes, or JSON escapes of lone UTF-16
surrogates (``"\\ud800"``), which decode to code points no UTF-8 string can hold.

pyarrow's JSON reader validates neither: bytes go into string columns as they are, and
the lake would carry them to every reader (and crash any that decodes them). Both are
rare, so the check is cheap on the common case: an ASCII buffer without a surrogate
escape is answered by two C scans (``bytes.isascii`` and one regex search); only the
lines that hold a high byte or such an escape are decoded one by one.
"""

from __future__ import annotations

import json
import re

import numpy as np

# \uD800-\uDFFF in any case: a surrogate escape (paired ones are fine; checked per line)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def invalid_text_lines(data: bytes, starts: np.ndarray, ends: np.ndarray) -> dict[int, str]:
    """{line index: why it is not valid text} for the lines [starts, ends) of ``data``."""
    ascii_only = data.isascii()
    escapes = _SURROGATE_ESCAPE.search(data) is not None
    if ascii_only and not escapes:
        return {}
    if not escapes and _valid_utf8(data):  # '\n' never occurs inside a multi-byte sequence
        return {}
    arr = np.frombuffer(data, np.uint8)
    at = [] if ascii_only else [np.flatnonzero(arr >= 0x80)]
    if escapes:
        at.append(np.array([m.start() for m in _SURROGATE_ESCAPE.finditer(data)], np.int64))
    offsets = np.concatenate(at) if at else np.zeros(0, np.int64)
    lines = np.unique(np.searchsorted(starts, offsets, side="right") - 1)
    found = {}
    for i in lines[(lines >= 0) & (lines < len(starts))]:
        why = text_problem(data[starts[i] : ends[i]])
        if why is not None:
            found[int(i)] = why
    return found


def text_problem(line: bytes) -> str | None:
    """Why ``line`` is not valid text, or None."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = line[e.start : e.end]
        return f"invalid UTF-8 at byte {e.start}: {bad.hex(' ')} ({e.reason})"
    if not _SURROGATE_ESCAPE.search(line):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None  # not JSON at all: the parser gives the reason
    for s in _strings(value):
        try:
            s.encode("utf-8")
        except UnicodeEncodeError as e:
            code = ord(s[e.start])
            return f"string escape \\u{code:04x} is a lone UTF-16 surrogate: not valid text"
    return None


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _strings(value):
    """Every string (keys included) of a decoded JSON value, iteratively deep."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
