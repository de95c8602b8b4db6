"""live_segments: per room per 30 s segment, shows, enters and CTR, with the segment's
multimodal features from the landing zone (what ContentCTR learns from).

A segment belongs to the hour its end falls in. Shows are impressions whose t0 falls in
the segment; enters are those shows whose enter was reported by the end of the hour
(a later-reported enter is unknown to this partition, as in any streaming table).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ml import schema as S
from ml.hours import HOUR_MS, landing_dir
from ml.ingest.catalog import CatalogSchemaError, conform
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
    "duplicate_segment",
    "bad_embedding",
)


def build_segments(
    content: pa.Table, live: pa.Table, rooms: pa.Table, hour_ms: int
) -> tuple[pa.Table, pd.DataFrame, dict]:
    """(segments, quarantined content rows with a reason, stats)."""
    try:
        content, bad_emb = conform(content, S.SEGMENTS_SCHEMA, "segments")
    except CatalogSchemaError as e:
        raise CatalogSchemaError(str(e).replace("catalog table", "content table")) from e
    df = content.select(["room_id", "segment_index", "segment_end_ms"]).to_pandas()
    reason = np.full(len(df), "", object)

    def mark(name: str, mask) -> None:
        reason[np.asarray(mask) & (reason == "")] = name

    known = np.isin(df.room_id.to_numpy(), rooms.column("item_id").to_numpy())
    mark("unknown_room", ~known)
    end = df.segment_end_ms.to_numpy()
    mark("segment_outside_partition", (end < hour_ms) | (end >= hour_ms + HOUR_MS))
    mark("duplicate_segment", df.duplicated(["room_id", "segment_index"]).to_numpy())
    mark("bad_embedding", bad_emb)
    good = reason == ""
    quarantine = df[~good].assign(reason=reason[~good])
    seg = content.filter(pa.array(good))

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
        "quarantined": int((~good).sum()),
        "segments_with_shows": int((n_shows > 0).sum()),
        "shows_in_content_segments": int(n_shows.sum()),
    }
    return out, quarantine, stats


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


def quarantine_table(quarantine: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(quarantine, preserve_index=False)


def reason_counts(quarantine: pd.DataFrame) -> list[dict]:
    """Quarantined rows per reason, most frequent first."""
    counts = quarantine.reason.value_counts()
    return counts.rename_axis("reason").reset_index().to_dict("records")
