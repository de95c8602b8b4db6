"""Typed columns from whatever the source files hold, and id lookups.

Values that cannot be read as their type are reported per row (never raised), so one bad
value rejects its row and not the batch: text is matched against a pattern before it is
cast, floats must be whole numbers, list lengths and finiteness are checked.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_INT_RE = r"^[+-]?[0-9]+(\.0*)?$"


def _plain(col) -> pa.Array:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


def to_int(col) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(int64 values with 0 for null/bad, null mask, unparsable mask)."""
    arr = _plain(col)
    n = len(arr)
    null = arr.is_null().to_numpy(zero_copy_only=False)
    bad = np.zeros(n, bool)
    t = arr.type
    if pa.types.is_timestamp(t):
        arr, t = pc.cast(arr, pa.timestamp("ms"), safe=False).cast(pa.int64()), pa.int64()
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        try:
            return pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(), null, bad
        except pa.ArrowInvalid:  # uint64 beyond int64
            arr = arr.cast(pa.string())
            t = arr.type
    if pa.types.is_floating(t):
        f = pc.fill_null(arr, 0.0).to_numpy(zero_copy_only=False).astype(np.float64)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(f) & (f == np.floor(f)) & (np.abs(f) < 2.0**62)
        bad = ~null & ~ok
        return np.where(ok, f, 0).astype(np.int64), null, bad
    if pa.types.is_string(t):
        s = pc.utf8_trim_whitespace(arr)
        good = pc.fill_null(pc.match_substring_regex(s, _INT_RE), False)
        s = pc.if_else(good, pc.replace_substring_regex(s, r"\.0*$", ""), None)
        try:
            vals = pc.fill_null(s.cast(pa.int64()), 0).to_numpy()
            return vals, null, ~null & ~good.to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:  # out of int64 range: judge value by value
            out = np.zeros(n, np.int64)
            for i, x in enumerate(s.to_pylist()):
                if x is not None and -(2**63) <= int(x) < 2**63:
                    out[i] = int(x)
                elif not null[i]:
                    bad[i] = True
            return out, null, bad
    return np.zeros(n, np.int64), null, ~null


def to_str(col) -> pa.Array:
    """Text (numbers are written as their text); null stays null."""
    arr = _plain(col)
    if not pa.types.is_string(arr.type):
        try:
            arr = arr.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            arr = pa.array([None if v is None else str(v) for v in arr.to_pylist()], pa.string())
    return arr


def to_vec(col, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(float32 [n, dim] with zero rows for bad ones, bad mask incl. null)."""
    arr = _plain(col)
    n = len(arr)
    out = np.zeros((n, dim), np.float32)
    if not (
        pa.types.is_list(arr.type)
        or pa.types.is_large_list(arr.type)
        or pa.types.is_fixed_size_list(arr.type)
    ):
        return out, np.ones(n, bool)
    lengths = pc.fill_null(pc.list_value_length(arr), -1).to_numpy(zero_copy_only=False)
    ok = lengths == dim
    if ok.any():
        try:
            flat = pc.list_flatten(arr if ok.all() else arr.filter(pa.array(ok)))
            if not pa.types.is_floating(flat.type) or flat.null_count:
                flat = pc.fill_null(flat.cast(pa.float64()), np.nan)
            with np.errstate(over="ignore"):  # beyond float32 range -> inf -> bad
                vals = flat.to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return out, np.ones(n, bool)
        finite = np.isfinite(vals).all(axis=1)
        idx = np.flatnonzero(ok)
        out[idx[finite]] = vals[finite]
        ok[idx[~finite]] = False
    return out, ~ok


class Index:
    """Positions of ids in a table (ids unique), by binary search over a sorted copy."""

    def __init__(self, ids: np.ndarray):
        self.ids = np.asarray(ids, np.int64)
        self._order = np.argsort(self.ids, kind="stable")
        self._sorted = self.ids[self._order]

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position of each id, found mask); position 0 where not found."""
        x = np.asarray(x, np.int64)
        if len(self.ids) == 0:
            return np.zeros(len(x), np.int64), np.zeros(len(x), bool)
        i = np.minimum(np.searchsorted(self._sorted, x), len(self._sorted) - 1)
        found = self._sorted[i] == x
        return np.where(found, self._order[i], 0), found


class SeenIds:
    """Duplicate detection across batches: the first row of an id wins."""

    def __init__(self) -> None:
        self._sorted = np.zeros(0, np.int64)

    def duplicates(self, ids: np.ndarray, consider: np.ndarray) -> np.ndarray:
        """Mask of rows (among ``consider``) whose id was seen before; records the rest."""
        dup = np.zeros(len(ids), bool)
        idx = np.flatnonzero(consider)
        if len(idx) == 0:
            return dup
        x = ids[idx]
        first = np.zeros(len(x), bool)
        first[np.unique(x, return_index=True)[1]] = True
        if len(self._sorted):
            i = np.minimum(np.searchsorted(self._sorted, x), len(self._sorted) - 1)
            first &= self._sorted[i] != x
        dup[idx[~first]] = True
        self._sorted = np.union1d(self._sorted, x[first])
        return dup
