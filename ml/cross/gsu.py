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

Cost: one compiled walk per exposure over its window only (``gsu_scan``): the four
"last L matching" GSUs stop once full, and the top-k looks every short-video play of the
window up in its room's row of the hour's room x video table of score levels
(``score_levels.Scorer``), pruning by a proven lower bound on the L-th best (``topk``);
one compiled pass then gathers every output column. No pass over the shard's rows and no per-user
Python loop.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ml import schema as S
from ml.cross import gsu_scan
from ml.cross.catalog_view import CatalogView
from ml.cross.history import DEFAULT_CAP, FLAG_LONG_VIEW, LIVE_ENTER, LIVE_EXIT, SV_PLAY, Columns
from ml.cross.score_levels import Scorer
from ml.cross.windows import PAD_REF, Windows, windows

DEFAULT_LEN = 50
GSUS = S.GSUS
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


_CODES = gsu_scan.WalkCodes(SV_PLAY, LIVE_ENTER, LIVE_EXIT, FLAG_LONG_VIEW)


def _refs(old: Columns, new: Columns, room_rows, room_authors, w: Windows, length, scorer):
    """(refs (5, E, L) in GSUS order, top-k scores (E, L)): the compiled walk of every
    window, once per block of the score table (one block unless the hour has more rooms
    than the table budget holds)."""
    e = len(room_rows)
    refs = np.full((len(GSUS), e, length), PAD_REF, np.int64)
    scores = np.zeros((e, length), np.float32)
    known = room_rows >= 0
    rooms, local = np.unique(room_rows[known], return_inverse=True)
    known_idx = np.flatnonzero(known)
    pending = np.flatnonzero(~known)  # no room embedding: every GSU but the top-k
    none = (np.zeros(1, np.uint16), [], [])
    blocks = scorer.chunks(rooms) if len(rooms) else iter([none])
    safe_rows = np.maximum(room_rows, 0)
    room_vecs = scorer.room_emb[safe_rows] if len(scorer.room_emb) else np.zeros((e, 1), np.float32)
    eps = scorer.eps[safe_rows] if len(scorer.eps) else np.zeros(e)
    # Exposures of one room together: its row of the score table stays in cache.
    by_room = np.argsort(room_rows, kind="stable")
    bounds = gsu_scan.WindowBounds(w.olo, w.ohi, w.nlo, w.nhi)
    for levels, row_in_table, part in blocks:
        score_row = np.full(e, -1, np.int64)
        row_of_room = np.full(len(rooms), -1, np.int64)
        row_of_room[part] = np.asarray(row_in_table, np.int64) * scorer.width
        score_row[known_idx] = row_of_room[local]
        todo = np.concatenate((pending, np.flatnonzero(score_row >= 0)))
        pending = pending[:0]
        table = gsu_scan.TopkInputs(score_row, levels, scorer.videos, room_vecs, eps)
        gsu_scan.window_refs(
            _walk_source(old), _walk_source(new), bounds, room_authors, table, _CODES,
            by_room[np.isin(by_room, todo)], refs, scores,
        )  # fmt: skip
    return refs, scores


def extract(
    old: Columns,
    new: Columns,
    exposures: pa.Table,
    catalog: CatalogView,
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
    w = windows(
        old["user_id"], old["report_time_ms"], new["user_id"], new["report_time_ms"], users, t0, cap
    )
    refs, scores = _refs(old, new, room_rows, room_authors.astype(np.int64), w, length, scorer)

    cols: dict[str, pa.Array] = {c: exposures.column(c) for c in EXPOSURE_COLUMNS}
    n_g, e = refs.shape[:2]
    ints = np.empty((3, n_g, e, length), np.int64)
    small = np.empty((2, n_g, e, length), np.int32)
    acts = np.empty((n_g, e, length), np.int8)
    masks = np.empty((n_g, e, length), np.int8)
    lens = np.empty((n_g, e), np.int16)
    max_report = np.empty((n_g, e), np.int64)
    gsu_scan.emit(
        refs, _emit_source(old), _emit_source(new), np.ascontiguousarray(t0, np.int64),
        ints, small, acts, masks, lens, max_report,
    )  # fmt: skip
    for gi, g in enumerate(GSUS):
        fields = {
            "item_id": ints[0, gi], "author_id": ints[1, gi], "category": small[0, gi],
            "emb_row": small[1, gi], "gap_ms": ints[2, gi], "action": acts[gi],
            "mask": masks[gi],
        }  # fmt: skip
        for f, values in fields.items():
            cols[f"{g}_{f}"] = fixed_list(values, length)
        cols[f"{g}_len"] = lens[gi]
        cols[f"{g}_max_report_ms"] = max_report[gi]
    cols["sv_topk_score"] = fixed_list(scores, length)
    return pa.table(cols, schema=sequence_schema(length))


def _emit_source(cols: Columns) -> gsu_scan.EmitSource:
    return gsu_scan.EmitSource(
        *(np.ascontiguousarray(cols[c]) for c in gsu_scan.EmitSource._fields)
    )


def _walk_source(cols: Columns) -> gsu_scan.WalkSource:
    return gsu_scan.WalkSource(*(cols[c] for c in gsu_scan.WalkSource._fields))


def fixed_list(values: np.ndarray, length: int) -> pa.FixedSizeListArray:
    """(rows, length) numpy -> fixed_size_list without copying the values."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), length)


def sequence_view(column: pa.ChunkedArray | pa.Array, length: int) -> np.ndarray:
    """(rows, length) numpy view of a fixed_size_list column (one chunk: zero-copy)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return arr.flatten().to_numpy(zero_copy_only=True).reshape(-1, length)
