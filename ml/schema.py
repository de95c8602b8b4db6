"""The data contract: raw event fields, event types, table schemas and quarantine reasons.

The simulator writes these, the importers map real data onto them, ingestion validates
against them and every later table builds on them. Change them here only.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# ---- domains and event types ------------------------------------------------------------
LIVE = "live"
SHORT_VIDEO = "short_video"
DOMAINS = (LIVE, SHORT_VIDEO)

LIVE_EVENT_TYPES = ("impression", "enter", "exit", "like", "comment", "follow", "gift", "share")
SHORT_VIDEO_EVENT_TYPES = ("impression", "play", "like", "comment", "follow", "share")
EVENT_TYPES = {LIVE: LIVE_EVENT_TYPES, SHORT_VIDEO: SHORT_VIDEO_EVENT_TYPES}
# Small integer codes for event types: comparing int8 arrays is far cheaper than strings.
ALL_EVENT_TYPES = tuple(sorted(set(LIVE_EVENT_TYPES) | set(SHORT_VIDEO_EVENT_TYPES)))
TYPE_CODE = {t: i for i, t in enumerate(ALL_EVENT_TYPES)}


def event_type_codes(column) -> np.ndarray:
    """int8 code per row of an event_type column (-1 for null or unknown types)."""
    idx = pc.index_in(column, value_set=pa.array(ALL_EVENT_TYPES))
    return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int8)


# Per-type fields that must be present (non-null) besides the common ones.
REQUIRED_BY_TYPE = {
    LIVE: {"exit": ("watch_ms",), "gift": ("gift_value",)},
    SHORT_VIDEO: {"play": ("watch_ms", "duration_ms")},
}

PAGES = ("feed", "follow", "explore", "live_square", "search")

# ---- constants more than one stage shares (Moment, Cross, models) -------------------------
# The six prediction tasks of a live exposure, in the order every table and model uses.
TASKS = ("click", "long_view", "like", "comment", "follow", "gift")
# A live session is a long view when the user watched at least this long after entering.
LONG_VIEW_MS = 60_000
# A short-video play of at least this share of the video is a long view.
SV_LONG_VIEW_RATIO = 0.5
# The five General Search Units of a live exposure (DESIGN §7.2), in column order.
GSUS = ("sv_short", "sv_topk", "author", "long_view", "live")
# History action codes fit in int8 and below this bound (short video < 16 <= live).
N_ACTION_CODES = 32

# ---- the raw event record ---------------------------------------------------------------
# JSON field -> Arrow type. Every landing line is one JSON object with these fields;
# fields a type does not use are null or absent; unknown fields are ignored.
RAW_EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("author_id", pa.int64()),
        ("event_time_ms", pa.int64()),
        ("report_time_ms", pa.int64()),
        ("page", pa.string()),
        ("watch_ms", pa.int64()),
        ("duration_ms", pa.int64()),
        ("gift_value", pa.float64()),
    ]
)
ID_FIELDS = ("event_id", "event_type", "user_id", "item_id", "author_id")
TIME_FIELDS = ("event_time_ms", "report_time_ms")

# Clean tables (raw_live_events, raw_short_video_events): the raw record, validated,
# deduplicated, sorted by (report_time_ms, event_id).
CLEAN_EVENT_SCHEMA = RAW_EVENT_SCHEMA

# ---- value bounds (beyond these a value is absurd, not just large) -----------------------
MAX_WATCH_MS = 24 * 3_600_000
MAX_DURATION_MS = 6 * 3_600_000
MAX_GIFT_VALUE = 1_000_000.0
# An event may be reported late, but not by more than this; older is a broken clock.
MAX_REPORT_DELAY_MS = 7 * 24 * 3_600_000
# Clocks disagree a little; an event time up to this far after its report time is tolerated.
CLOCK_SKEW_MS = 1_000
MIN_VALID_TIME_MS = 946_684_800_000  # 2000-01-01

# ---- quarantine ---------------------------------------------------------------------------
# One reason per bad line, checked in this order (the first that applies wins), so
# every landing line is exactly one of: clean, duplicate, quarantined.
QUARANTINE_REASONS = (
    "empty_line",  # blank or whitespace-only line
    "invalid_utf8",  # not valid text: invalid UTF-8 bytes or a lone surrogate escape
    "malformed_json",  # not a JSON object
    "wrong_type",  # a field of the wrong JSON type
    "missing_id",  # event_id, event_type, user_id, item_id or author_id missing
    "unknown_event_type",  # event_type not in the domain's set
    "missing_field",  # a per-type field (watch_ms of exit/play, gift_value of gift) missing
    "missing_time",  # event_time_ms or report_time_ms missing
    "report_time_outside_partition",  # report_time_ms not in the partition hour
    "event_time_absurd",  # before 2000, or more than MAX_REPORT_DELAY_MS before report
    "event_after_report",  # event_time_ms > report_time_ms + CLOCK_SKEW_MS
    "negative_value",  # watch_ms, duration_ms or gift_value < 0
    "absurd_value",  # beyond the MAX_* bounds
    "unknown_page",  # page not one of PAGES (a missing page is allowed: unknown)
    "unknown_item",  # item_id not in the catalog (room for live, video for short video)
)
DUPLICATE_REASONS = (
    "duplicate",  # event_id seen earlier in the same partition
    "duplicate_prior_hour",  # event_id already ingested in the previous partition
)
# A damaged landing file let through in salvage mode (corrupt files quarantined): one row
# per file; its unread lines are counted as lost, not as rows.
FILE_REASONS = (
    "corrupt_file",  # truncated or damaged gzip: the readable prefix was ingested
    "missing_file",  # listed by the sink's manifest, absent
    "short_file",  # fewer lines than the manifest lists
)
# Catalog rows (content_catalog) use the same quarantine table; line_number = row number.
CATALOG_REASONS = (
    "missing_id",
    "duplicate_id",
    "unknown_author",
    "negative_value",
    "absurd_value",
    "bad_time_range",
    "bad_embedding",
)
ALL_REASONS = (
    QUARANTINE_REASONS
    + DUPLICATE_REASONS
    + FILE_REASONS
    + ("duplicate_id", "unknown_author", "bad_time_range", "bad_embedding")
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("line_number", pa.int64()),  # 1-based; 0 for a whole-file record
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("event_id", pa.string()),  # when it could be read
        ("raw_line", pa.large_binary()),
    ]
)

# ---- catalog and content ------------------------------------------------------------------
EMBED_DIM = 32


def embedding_type(dim: int = EMBED_DIM) -> pa.DataType:
    return pa.list_(pa.float32(), dim)


AUTHOR_TYPES = ("talent", "game", "chat")

AUTHORS_SCHEMA = pa.schema(
    [
        ("author_id", pa.int64()),
        ("author_type", pa.string()),
        ("primary_category", pa.int32()),
        ("secondary_category", pa.int32()),  # -1 when the author has one category
        ("quality", pa.float32()),
        ("hosts_live", pa.bool_()),
    ]
)
SHORT_VIDEOS_SCHEMA = pa.schema(
    [
        ("item_id", pa.int64()),
        ("author_id", pa.int64()),
        ("category", pa.int32()),
        ("duration_ms", pa.int64()),
        ("publish_time_ms", pa.int64()),
        ("embedding", embedding_type()),
    ]
)
ROOMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.int64()),
        ("author_id", pa.int64()),
        ("category", pa.int32()),
        ("start_ms", pa.int64()),
        ("end_ms", pa.int64()),
        ("embedding", embedding_type()),
    ]
)
CATALOG_TABLES = {
    "authors": AUTHORS_SCHEMA,
    "short_videos": SHORT_VIDEOS_SCHEMA,
    "rooms": ROOMS_SCHEMA,
}

SEGMENT_MS = 30_000
FRAMES_PER_SEGMENT = 3
SEGMENTS_SCHEMA = pa.schema(
    [
        ("room_id", pa.int64()),
        ("author_id", pa.int64()),
        ("segment_index", pa.int32()),  # 0 = the room's first 30 s
        ("segment_start_ms", pa.int64()),
        ("segment_end_ms", pa.int64()),
        ("visual", pa.list_(pa.float32(), FRAMES_PER_SEGMENT * EMBED_DIM)),  # 3 frames
        ("asr", embedding_type()),
        ("comment", embedding_type()),
    ]
)
