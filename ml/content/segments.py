"""live_segments: per room per 30 s segment, shows, enters and CTR, with the segment's
multimodal features from the landing zone (what ContentCTR learns from).

A segment belongs to the hour its end falls in. Shows are impressions whose t0 falls in
the segment; enters are those shows whose enter was reported by the end of the hour
(a later-reported enter is unknown to this partition, as in any streaming table).

Rows in = segments + quarantined. A row is quarantined (one reason, the first that applies)
when its room is unknown, its end is outside the hour, a feature vector is bad
(``bad_embedding``: null, a variable-length list of the wrong width, a null element, NaN,
+-Inf or a value beyond float32; the detail names the column and the fault) or it repeats
a clean row's (room, segment). A whole-file fault (a missing column, a column of another
type, a fixed-size list of the wrong width) is one SegmentSchemaError naming the file, the
column, what was expected and what was found: no row of it could be read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml import schema as S
from ml.hours import HOUR_MS, landing_dir
from ml.ingest.catalog import CatalogSchemaError, cast_column
from ml.ingest.landing import CorruptFileError, MissingLandingHourError
from ml.io.store import StorageError, Store
from ml.moment.sessions import build_timeline, dedup_events

SEGMENT_TABLE_SCHEMA = pa.schema(
    [
        ("room_id", pa.int64()),
        ("author_id", pa.int64()),
        ("segment_index", pa.int32()),
        ("segment_start_ms", pa.int64()),
        ("segment_end_ms", pa.int64()),
        ("shows", pa.int32()),
        ("enters", pa.int32()),
        ("ctr", pa.float32()),  # null without shows
        *[S.SEGMENTS_SCHEMA.field(n) for n in ("visual", "asr", "comment")],
    ]
)
SEGMENT_REASONS = (
    "unknown_room",
    "segment_outside_partition",
    "bad_embedding",  # a feature vector null, of the wrong width, or with a null/NaN/Inf value
    "duplicate_segment",  # among rows otherwise clean: a good copy outlives a bad earlier one
)
VECTOR_COLUMNS = tuple(f.name for f in S.SEGMENTS_SCHEMA if pa.types.is_fixed_size_list(f.type))
# Per-row faults of a vector, in the order a quarantine detail names them.
FAULTS = ("null vector", "wrong width", "null value", "NaN", "+Inf", "-Inf", "beyond float32")
_ID_COLUMNS = ("room_id", "segment_index", "segment_end_ms")


class SegmentSchemaError(CatalogSchemaError):
    """The content file lacks a column or holds one no row of which can be read (the wrong
    type, or a fixed-size vector of the wrong width): the whole file, not a row, is wrong."""


def check_columns(content: pa.Table, source: str) -> None:
    """One clear error naming the file, the column, what was expected and what was found."""
    where = f"content table 'segments' ({source})"
    missing = [f.name for f in S.SEGMENTS_SCHEMA if f.name not in content.column_names]
    if missing:
        raise SegmentSchemaError(f"content table 'segments' lacks column(s) {missing} in {source}")
    for name in VECTOR_COLUMNS:
        want, got = S.SEGMENTS_SCHEMA.field(name).type, content.schema.field(name).type
        listy = pa.types.is_list(got) or pa.types.is_large_list(got)
        if not (listy or pa.types.is_fixed_size_list(got)) or not _numeric(got.value_type):
            raise SegmentSchemaError(
                f"{where}: column {name!r} has type {got}, expected a list of "
                f"{want.list_size} numbers ({want})"
            )
        if pa.types.is_fixed_size_list(got) and got.list_size != want.list_size:
            raise SegmentSchemaError(
                f"{where}: column {name!r} is a fixed-size list of width {got.list_size}, "
                f"expected width {want.list_size} ({want}); every row has the wrong width"
            )


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_null(t)


def vector_faults(column: pa.ChunkedArray | pa.Array, width: int) -> dict[str, np.ndarray]:
    """Per fault in FAULTS, how many of each row's values have it (1/0 for a null vector
    and a wrong width), over the flattened values at once."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    null_vec = arr.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_fixed_size_list(arr.type):
        length = np.where(null_vec, 0, arr.type.list_size)
    else:
        length = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(arr)
    row = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
    if pa.types.is_null(flat.type):
        v = np.zeros(len(flat), np.float32)
    else:
        src = flat if pa.types.is_floating(flat.type) else pc.cast(flat, pa.float64(), safe=False)
        v = (pc.fill_null(src, 0.0) if src.null_count else src).to_numpy(zero_copy_only=False)
    # the few faulty values first (one pass over all), then what each of them is
    odd = np.flatnonzero(~np.isfinite(v))
    with np.errstate(over="ignore"):  # a float64 beyond float32 would publish as Inf
        beyond = np.flatnonzero(np.isinf(v.astype(np.float32))) if v.itemsize > 4 else odd[:0]
    per_value = {
        "null value": np.flatnonzero(flat.is_null().to_numpy(zero_copy_only=False)),
        "NaN": odd[np.isnan(v[odd])],
        "+Inf": odd[np.isposinf(v[odd])],
        "-Inf": odd[np.isneginf(v[odd])],
        "beyond float32": np.setdiff1d(beyond, odd),
    }
    out = {
        "null vector": null_vec.astype(np.int64),
        "wrong width": (~null_vec & (length != width)).astype(np.int64),
    }
    out.update({k: np.bincount(row[i], minlength=n) for k, i in per_value.items()})
    out["length"] = length
    return out


def _vector_details(faults: dict[str, dict[str, np.ndarray]], rows: np.ndarray) -> np.ndarray:
    """'visual: 1 NaN, 2 +Inf; asr: null vector' for the given rows (object strings)."""
    detail = np.full(len(rows), "", object)
    for name, f in faults.items():
        width = S.SEGMENTS_SCHEMA.field(name).type.list_size
        desc = np.full(len(rows), "", object)
        for kind in FAULTS:
            cnt = f[kind][rows]
            if kind == "null vector":
                text = np.full(len(rows), "null vector", object)
            elif kind == "wrong width":
                found = f["length"][rows].astype(str).astype(object)
                text = "width " + found + f" (expected {width})"
            else:
                text = cnt.astype(str).astype(object) + f" {kind}"
            desc = _append(desc, text, cnt > 0, ", ")
        detail = _append(detail, f"{name}: " + desc, desc != "", "; ")
    return detail


def fault_counts(faults: dict[str, dict[str, np.ndarray]], rows: np.ndarray) -> dict:
    """{column: {fault: rows with it}} over the ``rows`` mask, non-zero counts only."""
    out = {}
    for name, f in faults.items():
        counts = {k: int(np.count_nonzero(f[k][rows])) for k in FAULTS}
        if any(counts.values()):
            out[name] = {k: v for k, v in counts.items() if v}
    return out


def _append(acc: np.ndarray, text, where: np.ndarray, sep: str) -> np.ndarray:
    return np.where(where, np.where(acc == "", text, acc + sep + text), acc)


def build_segments(
    content: pa.Table,
    live: pa.Table,
    rooms: pa.Table,
    hour_ms: int,
    source: str = "segments.parquet",
) -> tuple[pa.Table, pd.DataFrame, dict]:
    """(segments, quarantined content rows with a reason and detail, stats); ``source``
    (the landing file) names the file in errors. Rows in = segments + quarantined."""
    check_columns(content, source)
    faults = {
        c: vector_faults(content.column(c), S.SEGMENTS_SCHEMA.field(c).type.list_size)
        for c in VECTOR_COLUMNS
    }
    bad_vec = np.zeros(content.num_rows, bool)
    for f in faults.values():
        bad_vec |= np.any([f[k] > 0 for k in FAULTS], axis=0)
    ids = _cast_scalars(content, source)
    df = ids.select(list(_ID_COLUMNS)).to_pandas()
    reason = np.full(len(df), "", object)

    def mark(name: str, mask) -> None:
        reason[np.asarray(mask) & (reason == "")] = name

    known = np.isin(df.room_id.to_numpy(), rooms.column("item_id").to_numpy())
    mark("unknown_room", ~known)
    end = df.segment_end_ms.to_numpy()
    mark("segment_outside_partition", (end < hour_ms) | (end >= hour_ms + HOUR_MS))
    mark("bad_embedding", bad_vec)
    dup = np.zeros(len(df), bool)
    clean = reason == ""
    dup[clean] = df[clean].duplicated(["room_id", "segment_index"]).to_numpy()
    mark("duplicate_segment", dup)
    good = reason == ""
    bad = np.flatnonzero(~good)
    quarantine = df.iloc[bad].assign(
        row_number=bad + 1, reason=reason[bad], detail=_details(df, reason, bad, faults, hour_ms)
    )
    seg = _cast_vectors(ids.filter(pa.array(good)), content.filter(pa.array(good)))

    tl = build_timeline(dedup_events(live))
    t0 = tl.column("t0_ms").to_numpy()
    room = tl.column("room_id").to_numpy()
    entered = tl.column("first_click_report_ms").to_numpy() < hour_ms + HOUR_MS
    starts = pd.Series(
        rooms.column("start_ms").to_numpy(), index=rooms.column("item_id").to_numpy()
    )
    room_start = starts.reindex(room).to_numpy()
    has_room = ~np.isnan(room_start)
    idx = np.full(len(t0), -1, np.int64)
    idx[has_room] = (t0[has_room] - room_start[has_room].astype(np.int64)) // S.SEGMENT_MS
    shows = (
        pd.DataFrame(
            {"room_id": room[has_room], "segment_index": idx[has_room], "enter": entered[has_room]}
        )
        .groupby(["room_id", "segment_index"])["enter"]
        .agg(shows="size", enters="sum")
    )
    keys = pd.MultiIndex.from_arrays(
        [seg.column("room_id").to_numpy(), seg.column("segment_index").to_numpy().astype(np.int64)]
    )
    joined = shows.reindex(keys)
    n_shows = joined["shows"].fillna(0).to_numpy().astype(np.int32)
    n_enters = joined["enters"].fillna(0).to_numpy().astype(np.int32)
    ctr = pa.array(n_enters / np.maximum(n_shows, 1), pa.float32(), mask=n_shows == 0)
    out = pa.table(
        {
            "room_id": seg.column("room_id"),
            "author_id": seg.column("author_id"),
            "segment_index": seg.column("segment_index"),
            "segment_start_ms": seg.column("segment_start_ms"),
            "segment_end_ms": seg.column("segment_end_ms"),
            "shows": n_shows,
            "enters": n_enters,
            "ctr": ctr,
            "visual": seg.column("visual"),
            "asr": seg.column("asr"),
            "comment": seg.column("comment"),
        },
        schema=SEGMENT_TABLE_SCHEMA,
    ).sort_by([("room_id", "ascending"), ("segment_index", "ascending")])
    stats = {
        "content_rows": content.num_rows,
        "segments": out.num_rows,
        "quarantined": len(bad),
        "reasons": {r: n for r in SEGMENT_REASONS if (n := int(np.count_nonzero(reason == r)))},
        "bad_embedding": fault_counts(faults, reason == "bad_embedding"),
        "segments_with_shows": int((n_shows > 0).sum()),
        "shows_in_content_segments": int(n_shows.sum()),
    }
    return out, quarantine, stats


def _cast_scalars(content: pa.Table, source: str) -> pa.Table:
    """The contract's non-vector columns cast to their types (uncastable: one clear error)."""
    fields = [f for f in S.SEGMENTS_SCHEMA if f.name not in VECTOR_COLUMNS]
    where = f"content table 'segments' ({source})"
    cols = [cast_column(content.column(f.name), f, where, SegmentSchemaError) for f in fields]
    return pa.table(cols, schema=pa.schema(fields))


def _cast_vectors(scalars: pa.Table, content: pa.Table) -> pa.Table:
    """The clean rows whole: every vector is of the contract's width, without a null."""
    vectors = {}
    for c in VECTOR_COLUMNS:
        t = S.SEGMENTS_SCHEMA.field(c).type
        col = content.column(c)
        if not pa.types.is_fixed_size_list(col.type):
            col = pc.cast(col, pa.list_(pa.float32()), safe=False)
        vectors[c] = pc.cast(col, t, safe=False)
    cols = {**{n: scalars.column(n) for n in scalars.column_names}, **vectors}
    return pa.table([cols[n] for n in S.SEGMENTS_SCHEMA.names], schema=S.SEGMENTS_SCHEMA)


def _details(df: pd.DataFrame, reason: np.ndarray, bad: np.ndarray, faults, hour_ms: int):
    """Why each quarantined row is: what, in which column, with the offending values."""
    r = reason[bad]
    q = df.iloc[bad]
    room = _text(q.room_id)
    out = np.full(len(bad), "", object)
    pick = r == "unknown_room"
    out[pick] = "room_id " + room[pick] + " is not a room of the catalog"
    pick = r == "segment_outside_partition"
    out[pick] = (
        "segment_end_ms " + _text(q.segment_end_ms)[pick]
        + f" is outside the partition [{hour_ms}, {hour_ms + HOUR_MS})"
    )  # fmt: skip
    pick = r == "bad_embedding"
    out[pick] = _vector_details(faults, bad[pick])
    pick = r == "duplicate_segment"
    out[pick] = (
        "room " + room[pick] + " segment " + _text(q.segment_index)[pick]
        + " already has an earlier clean row"
    )  # fmt: skip
    return out


def _text(s: pd.Series) -> np.ndarray:
    return s.astype("Int64").astype(str).to_numpy(object)


def landing_segments_path(hour_ms: int) -> str:
    return f"landing/content/{landing_dir(hour_ms)}/segments.parquet"


def read_landing_segments(landing: Store, hour_ms: int) -> pa.Table:
    """The sink's segment features of one hour; a missing or unreadable file is one clear
    error naming it."""
    rel = landing_segments_path(hour_ms)
    if not landing.exists(rel):
        raise MissingLandingHourError(f"missing landing hour: no {landing.url(rel)}")
    try:
        return landing.read_parquet(rel)
    except StorageError as e:
        raise CorruptFileError(landing.url(rel), str(e)) from e


def quarantine_table(quarantine: pd.DataFrame, source_file: str) -> pa.Table:
    """The quarantined rows in the lake's quarantine schema: line_number = 1-based row of
    the landing file, raw_line = the row's ids as compact JSON."""
    ids = quarantine[list(_ID_COLUMNS)].astype("Int64")
    raw = ids.to_json(orient="records", lines=True).splitlines() if len(ids) else []
    n = len(quarantine)
    return pa.table(
        {
            "source_file": [source_file] * n,
            "line_number": quarantine.row_number.to_numpy(np.int64),
            "reason": quarantine.reason.to_numpy(object),
            "detail": quarantine.detail.to_numpy(object),
            "event_id": pa.nulls(n, pa.string()),
            "raw_line": [line.encode() for line in raw],
        },
        schema=S.QUARANTINE_SCHEMA,
    )


def reason_counts(quarantine: pd.DataFrame) -> list[dict]:
    """Quarantined rows per reason, most frequent first."""
    counts = quarantine.reason.value_counts()
    return counts.rename_axis("reason").reset_index().to_dict("records")
