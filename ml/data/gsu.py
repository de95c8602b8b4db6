"""General Search Units (Moment & Cross §2.4, DESIGN §7.2): fixed-length sequences per
live exposure, from the user's history strictly before t0 by report time.

For an exposure of user u to room r at t0, the *window* is the newest ``cap`` interactions
of u reported before t0: history[H-1] (rows reported before t0) followed by the hour's
own interactions reported before t0 — never a row reported at or after t0. Five GSUs:

* ``sv_short``  — the last L short-video plays;
* ``sv_topk``   — the top L short-video plays by the dot product of the video's content
  embedding with the room's (catalog ``rooms.embedding``), ties by recency (newer first);
  the score is the float64 dot product of the float32 vectors, rounded to float32, so it
  does not depend on how a BLAS kernel orders its sums;
* ``author``    — the last L interactions (both domains) with items of the room's author;
* ``long_view`` — the last L long views (long-viewed short videos, live exits of >= 60 s);
* ``live``      — the last L live-session rows (enters and exits).

Every sequence is newest (or best) first, padded at the end. Per GSU the columns
``<g>_item_id``, ``<g>_author_id``, ``<g>_category``, ``<g>_emb_row``, ``<g>_gap_ms``
(t0 - event time), ``<g>_action`` and ``<g>_mask`` (int8: 1 = real item) are
``fixed_size_list<...>[L]`` without nulls, so ``col.flatten().to_numpy().reshape(-1, L)``
is a zero-copy (rows, L) view of each chunk (int8 rather than bool for the mask: Arrow packs
booleans into bits, which cannot be viewed). Padding holds 0 (ids, gaps, action code 0) and
-1 (category, emb_row). ``<g>_len`` counts the real items and ``<g>_max_report_ms`` is the
latest report time among them (-1 when empty), the leakage check's evidence;
``sv_topk_score`` carries the dot products.

Cost, all vectorised: a few passes over the shard's rows (only the exposed users' rows when
they are a small part of it) for the live-session positions, a hashed (user, author) pass
and the top-k candidate columns; the dense GSUs (plays, long views) scan back from each
window's newest row; O(L) per exposure for the rest, except the top-k, which looks up every
candidate of the window once in an hourly room x video score table (``gsu_topk``) and ranks
exactly only the few above a pruning bound.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ml.data.gsu_topk import Scorer, topk_refs
from ml.data.history import (
    DEFAULT_CAP,
    FLAG_LONG_VIEW,
    LIVE_ENTER,
    LIVE_EXIT,
    SV_PLAY,
    Catalog,
    Columns,
)
from ml.data.seqindex import (
    PAD_REF,
    Windows,
    last_l,
    last_matching,
    pair_keys,
    pair_positions,
    seg_searchsorted,
    windows,
)

DEFAULT_LEN = 50
GSUS = ("sv_short", "sv_topk", "author", "long_view", "live")
# field -> (Arrow type, padding)
FIELDS = {
    "item_id": (pa.int64(), 0),
    "author_id": (pa.int64(), 0),
    "category": (pa.int32(), -1),
    "emb_row": (pa.int32(), -1),
    "gap_ms": (pa.int64(), 0),
    "action": (pa.int8(), 0),
    "mask": (pa.int8(), 0),
}
EXPOSURE_COLUMNS = ["exposure_id", "user_id", "room_id", "author_id", "t0_ms"]


def sequence_schema(length: int = DEFAULT_LEN) -> pa.Schema:
    fields = [
        ("exposure_id", pa.string()),
        ("user_id", pa.int64()),
        ("room_id", pa.int64()),
        ("author_id", pa.int64()),
        ("t0_ms", pa.int64()),
    ]
    for g in GSUS:
        fields += [(f"{g}_{f}", pa.list_(t, length)) for f, (t, _) in FIELDS.items()]
        fields += [(f"{g}_len", pa.int16()), (f"{g}_max_report_ms", pa.int64())]
    fields.append(("sv_topk_score", pa.list_(pa.float32(), length)))
    return pa.schema(fields)


def _is_play(action: np.ndarray) -> np.ndarray:
    return action == SV_PLAY


def _is_long(flags: np.ndarray) -> np.ndarray:
    return (flags & FLAG_LONG_VIEW) != 0


def _is_live_session(action: np.ndarray) -> np.ndarray:
    return (action == LIVE_ENTER) | (action == LIVE_EXIT)


def _author_refs(old: Columns, new: Columns, users, authors, w: Windows, length: int):
    """Last L rows by the room's author: one hashed pass finds the rows whose (user,
    author) pair is some exposure's (user, room author); they are indexed by pair, and
    each exposure binary-searches its pair and then its window."""
    keys = pair_keys(users, authors, np.unique(users), np.unique(authors))
    q = np.searchsorted(np.unique(keys), keys)  # dense pair id, as pair_positions numbers them
    found = []
    for cols, lo, hi in ((new, w.nlo, w.nhi), (old, w.olo, w.ohi)):
        pos, pair = pair_positions(cols["user_id"], cols["author_id"], users, authors)
        order = np.lexsort((pos, pair))
        pair, pos = pair[order], pos[order]
        ks, ke = np.searchsorted(pair, q, "left"), np.searchsorted(pair, q, "right")
        found.append((pos, seg_searchsorted(pos, ks, ke, lo), seg_searchsorted(pos, ks, ke, hi)))
    (pn, an, bn), (po, ao, bo) = found
    return last_l(pn, an, bn, po, ao, bo, length)


class _Refs:
    """Gathers column values for a (E, L) array of refs (old >= 0, new <= -2, pad -1)."""

    def __init__(self, refs: np.ndarray):
        self.pad = refs == PAD_REF
        self.from_new = refs <= -2
        self.i_old = np.maximum(refs, 0)
        self.i_new = np.maximum(-refs - 2, 0)

    def gather(self, old: np.ndarray, new: np.ndarray, pad) -> np.ndarray:
        out = old.take(self.i_old, mode="clip") if len(old) else np.zeros(self.pad.shape, old.dtype)
        if len(new):
            np.copyto(out, new.take(self.i_new, mode="clip"), where=self.from_new)
        out[self.pad] = pad
        return out


USED_COLUMNS = (
    "user_id",
    "report_time_ms",
    "event_time_ms",
    "item_id",
    "author_id",
    "action",
    "category",
    "emb_row",
    "flags",
)


def _exposed_rows(cols: Columns, users: np.ndarray) -> Columns:
    """The rows of the exposed users only (order kept), when they are a small part of the
    shard: the copy (~16 ns a row) then costs less than the passes over rows it saves."""
    u = cols["user_id"]
    uq = np.unique(users)
    start, end = np.searchsorted(u, uq, "left"), np.searchsorted(u, uq, "right")
    n = int((end - start).sum())
    if n > 0.35 * len(u):
        return cols
    lengths = end - start
    idx = np.repeat(start - np.cumsum(lengths) + lengths, lengths) + np.arange(n)
    return {c: cols[c].take(idx) for c in USED_COLUMNS}


def extract(
    old: Columns,
    new: Columns,
    exposures: pa.Table,
    catalog: Catalog,
    length: int = DEFAULT_LEN,
    cap: int = DEFAULT_CAP,
    scorer: Scorer | None = None,
) -> pa.Table:
    """GSU sequences of ``exposures`` (EXPOSURE_COLUMNS) from one shard: ``old`` =
    history[H-1] rows of the shard, ``new`` = the shard's interactions of hour H (both
    sorted by user, report time, tie order). One output row per exposure, in input order."""
    if length < 1 or cap < 1:
        raise ValueError(f"length and cap must be >= 1, got {length}, {cap}")
    room_rows = catalog.rooms.rows_of(exposures.column("room_id").to_numpy())
    scorer = scorer or Scorer(catalog, room_rows)
    users = exposures.column("user_id").to_numpy()
    t0 = exposures.column("t0_ms").to_numpy()
    room_authors = exposures.column("author_id").to_numpy()
    old, new = _exposed_rows(old, users), _exposed_rows(new, users)
    w = windows(
        old["user_id"], old["report_time_ms"], new["user_id"], new["report_time_ms"], users, t0, cap
    )
    refs = {
        "sv_short": last_matching(old["action"], new["action"], _is_play, w, length),
        "long_view": last_matching(old["flags"], new["flags"], _is_long, w, length),
        "live": last_matching(old["action"], new["action"], _is_live_session, w, length, 0),
        "author": _author_refs(old, new, users, room_authors, w, length),
    }
    refs["sv_topk"], scores = topk_refs(old, new, room_rows, w, length, scorer)

    cols: dict[str, pa.Array] = {c: exposures.column(c) for c in EXPOSURE_COLUMNS}
    for g in GSUS:
        r = _Refs(refs[g])
        mask = ~r.pad
        for f, (typ, pad) in FIELDS.items():
            if f == "gap_ms":
                ev = r.gather(old["event_time_ms"], new["event_time_ms"], 0)
                arr = np.where(mask, t0[:, None] - ev, 0)
            elif f == "mask":
                arr = mask.astype(np.int8)
            else:
                arr = r.gather(old[f], new[f], pad)
            cols[f"{g}_{f}"] = fixed_list(arr.astype(typ.to_pandas_dtype(), copy=False), length)
        cols[f"{g}_len"] = mask.sum(axis=1).astype(np.int16)
        rep = r.gather(old["report_time_ms"], new["report_time_ms"], -1)
        cols[f"{g}_max_report_ms"] = rep.max(axis=1, initial=-1)
    cols["sv_topk_score"] = fixed_list(scores, length)
    return pa.table(cols, schema=sequence_schema(length))


def fixed_list(values: np.ndarray, length: int) -> pa.FixedSizeListArray:
    """(rows, length) numpy -> fixed_size_list without copying the values."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), length)


def sequence_view(column: pa.ChunkedArray | pa.Array, length: int) -> np.ndarray:
    """(rows, length) numpy view of a fixed_size_list column (one chunk: zero-copy)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return arr.flatten().to_numpy(zero_copy_only=True).reshape(-1, length)
