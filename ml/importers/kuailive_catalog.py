"""The catalog (``landing/catalog``) from KuaiLive-M3: authors, short videos, rooms, and
``taxonomy.json`` (the sorted first-level category names; a category is its index).

Rows are validated the way ``ml.ingest.catalog.ingest_catalog`` will validate them (plus
type checks), so what lands ingests without quarantine; rejected rows go to the import
rejects. Embedding rows are reduced as they stream in and spilled by output chunk, so
the tables are assembled chunk by chunk (memory: one chunk plus the output bytes).
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml import schema as S
from ml.importers.columns import Index, SeenIds, to_int, to_str
from ml.importers.kuailive_common import Context, fixed_list, reduce_embedding, var_list
from ml.importers.spill import Spill
from ml.io.store import Store, parquet_bytes

CATALOG_DIR = "landing/catalog"
CHUNK = 1 << 18  # catalog rows per assembled row group
NO_TIME = np.iinfo(np.int64).max
# author_type from the name of the author's primary category (first match wins), else chat.
AUTHOR_TYPE_WORDS = (
    ("game", ("游戏", "电竞", "手游", "game", "esport")),
    ("talent", ("音乐", "舞蹈", "才艺", "唱", "乐器", "艺术", "music", "danc", "sing", "talent")),
)
_FANS_MULT = {"k": 1e3, "千": 1e3, "w": 1e4, "万": 1e4, "m": 1e6, "亿": 1e8}
_EMB = pa.schema(
    [("pos", pa.int64()), ("embedding", S.embedding_type()), ("full", pa.list_(pa.float32()))]
)
# (table, id column, vector column, dimension) of the two embedding tables.
EMBEDDINGS = {
    "videos": ("photo_emb_128", "photo_id", "feature", 128),
    "rooms": ("live_emb_64", "live_id", "embedding", 64),
}


class Catalog:
    """The clean catalog in memory (scalar columns; embeddings stay in the spill), with
    id indexes. Arrays of one table are aligned; rows are in source file order."""

    users: Index | None = None  # user_id_set, when present
    # authors
    author_ids: np.ndarray
    authors: Index
    hosts_live: np.ndarray
    quality: np.ndarray
    fans_text: pa.Array
    primary: np.ndarray
    secondary: np.ndarray
    author_type: list[str]
    # short videos
    video_ids: np.ndarray
    videos: Index
    video_author: np.ndarray
    video_duration: np.ndarray
    video_category: np.ndarray
    video_first_play: np.ndarray  # NO_TIME until a photo_play row is seen
    # rooms
    room_ids: np.ndarray
    rooms: Index
    room_author: np.ndarray
    room_start: np.ndarray
    room_end: np.ndarray
    room_end_null: np.ndarray
    room_category: np.ndarray
    taxonomy: list[str]
    emb_spill: Spill  # per "<videos|rooms>/<chunk>": (pos, reduced, full) rows
    has_emb: dict[str, np.ndarray]

    def __init__(self) -> None:
        self.taxonomy, self.has_emb = [], {}


def build_catalog(ctx: Context) -> Catalog:
    cat = Catalog()
    if ctx.has("user_id_set"):
        ids = [v.ints("user_id", "null_id")[v.ok] for _, v in ctx.scan("user_id_set")]
        cat.users = Index(np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.int64))
    _authors(ctx, cat)
    _videos(ctx, cat)
    _tags(ctx, cat)
    _rooms(ctx, cat)
    _author_categories(cat)
    cat.emb_spill = ctx.spill("embeddings", _EMB)
    for kind, (table, id_col, vec_col, dim) in EMBEDDINGS.items():
        index = cat.videos if kind == "videos" else cat.rooms
        cat.has_emb[kind] = np.zeros(len(index), bool)
        if ctx.has(table):
            _embeddings(ctx, cat, kind, table, id_col, vec_col, dim, index)
    cat.emb_spill.flush()  # read back only when the catalog is written, at the end
    return cat


def _authors(ctx: Context, cat: Catalog) -> None:
    ids, live, fans = [], [], []
    seen = SeenIds()
    bins: dict[str | None, int] = {}
    for b, v in ctx.scan("author_profile"):
        aid = v.ints("author_id", "null_id")
        is_live = v.ints("is_live_author")
        v.mark("duplicate_id", seen.duplicates(aid, v.ok), "author_id")
        ok = v.ok
        ids.append(aid[ok])
        live.append(is_live[ok] > 0)
        fans.append(_codes(to_str(b.raw.column("fans_user_num")).filter(pa.array(ok)), bins))
    cat.author_ids = _cat(ids, np.int64)
    cat.authors = Index(cat.author_ids)
    cat.hosts_live = _cat(live, bool)
    names = sorted(bins, key=bins.__getitem__)  # in code order
    codes = _cat(fans, np.int64)  # -1: null bin
    cat.quality = np.append(bin_quality(names), 0.0)[codes]
    cat.fans_text = pa.array(names, pa.string()).take(pa.array(codes, mask=codes < 0))


def bin_quality(bins: list[str | None]) -> np.ndarray:
    """quality in (0, 1) per fans_user_num bin: (rank + 1) / (number of bins + 1), ranked by
    the bin's lower bound ("10000-100000" -> 1e4; k/w/万/m suffixes understood); 0 for a
    missing or unparsable bin."""
    lower = [fans_lower_bound(b) for b in bins]
    known = sorted((lo, str(b)) for lo, b in zip(lower, bins, strict=True) if lo is not None)
    rank = {b: i for i, (_, b) in enumerate(dict.fromkeys(known))}
    return np.array(
        [
            (rank[str(b)] + 1) / (len(rank) + 1) if lo is not None else 0.0
            for lo, b in zip(lower, bins, strict=True)
        ],
        np.float64,
    )


def fans_lower_bound(text: str | None) -> float | None:
    if text is None:
        return None
    m = re.search(r"(\d+(?:\.\d+)?)\s*([kKwWmM千万亿]?)", text)
    if not m:
        return None
    return float(m.group(1)) * _FANS_MULT.get(m.group(2).lower(), 1.0)


def _videos(ctx: Context, cat: Catalog) -> None:
    ids, authors, durations = [], [], []
    seen = SeenIds()
    for _, v in ctx.scan("photo_meta"):
        pid = v.ints("photo_id", "null_id")
        aid = v.ints("author_id", "null_id")
        dur = v.ints("duration", "missing_value")
        v.mark("negative_value", dur < 0, "duration")
        v.mark("absurd_value", (dur == 0) | (dur > S.MAX_DURATION_MS), "duration")
        v.mark("unknown_author", ~cat.authors.find(aid)[1], "author_id")
        v.mark("duplicate_id", seen.duplicates(pid, v.ok), "photo_id")
        ok = v.ok
        ids.append(pid[ok])
        authors.append(aid[ok])
        durations.append(dur[ok])
    cat.video_ids = _cat(ids, np.int64)
    cat.videos = Index(cat.video_ids)
    cat.video_author = _cat(authors, np.int64)
    cat.video_duration = _cat(durations, np.int64)
    cat.video_first_play = np.full(len(cat.video_ids), NO_TIME, np.int64)
    ctx.stats["photo_meta"].out_rows = len(cat.video_ids)


def _tags(ctx: Context, cat: Catalog) -> None:
    code = np.full(len(cat.video_ids), -1, np.int64)
    names: dict[str | None, int] = {}
    if ctx.has("photo_tag"):
        seen = SeenIds()
        for b, v in ctx.scan("photo_tag"):
            pid = v.ints("photo_id", "null_id")
            name = pc.utf8_trim_whitespace(to_str(b.raw.column("first_level_category_name")))
            name = pc.if_else(pc.equal(name, ""), None, name)
            v.mark(
                "missing_value",
                name.is_null().to_numpy(zero_copy_only=False),
                "first_level_category_name",
            )
            pos, found = cat.videos.find(pid)
            v.mark("unknown_item", ~found, "photo_id")
            v.mark("duplicate_id", seen.duplicates(pid, v.ok), "photo_id")
            ok = v.ok
            code[pos[ok]] = _codes(name.filter(pa.array(ok)), names)
    cat.taxonomy = sorted(str(n) for n in names)
    index = {name: i for i, name in enumerate(cat.taxonomy)}
    remap = np.array([index[str(n)] for n in names] + [-1], np.int64)  # code -1 -> -1
    cat.video_category = remap[code]
    untagged = int(np.sum(code < 0))
    if untagged:
        ctx.warnings.append(f"{untagged} short video(s) have no photo_tag category: category -1")


def _rooms(ctx: Context, cat: Catalog) -> None:
    cols: dict[str, list] = {k: [] for k in ("id", "author", "start", "end", "end_null")}
    seen = SeenIds()
    for b, v in ctx.scan("live_room_meta"):
        lid = v.ints("live_id", "null_id")
        aid = v.ints("author_id", "null_id")
        start = v.ints("start_timestamp", "missing_time")
        end, end_null, end_bad = to_int(b.raw.column("end_timestamp"))
        v.mark("wrong_type", end_bad, "end_timestamp")
        v.mark("absurd_time", start < S.MIN_VALID_TIME_MS, "start_timestamp")
        v.mark("end_before_start", ~end_null & (end < start), "end_timestamp")
        v.mark("unknown_author", ~cat.authors.find(aid)[1], "author_id")
        v.mark("duplicate_id", seen.duplicates(lid, v.ok), "live_id")
        ok = v.ok
        for k, x in zip(cols, (lid, aid, start, end, end_null), strict=True):
            cols[k].append(x[ok])
    cat.room_ids = _cat(cols["id"], np.int64)
    cat.rooms = Index(cat.room_ids)
    cat.room_author = _cat(cols["author"], np.int64)
    cat.room_start = _cat(cols["start"], np.int64)
    cat.room_end = _cat(cols["end"], np.int64)
    cat.room_end_null = _cat(cols["end_null"], bool)
    ctx.stats["live_room_meta"].out_rows = len(cat.room_ids)


def _author_categories(cat: Catalog) -> None:
    """primary / secondary category: the author's most / second most common category over
    their videos (ties: the smaller index; -1 when none); author_type from the primary name."""
    n = len(cat.author_ids)
    cat.primary = np.full(n, -1, np.int32)
    cat.secondary = np.full(n, -1, np.int32)
    tagged = cat.video_category >= 0
    if tagged.any():
        k = len(cat.taxonomy)
        apos = cat.authors.find(cat.video_author[tagged])[0]
        uniq, counts = np.unique(apos * k + cat.video_category[tagged], return_counts=True)
        a, c = uniq // k, uniq % k
        order = np.lexsort((c, -counts, a))
        a, c = a[order], c[order]
        first = np.ones(len(a), bool)
        first[1:] = a[1:] != a[:-1]
        cat.primary[a[first]] = c[first]
        second = np.zeros(len(a), bool)
        second[1:] = first[:-1] & ~first[1:]
        cat.secondary[a[second]] = c[second]
    types = [author_type(name) for name in cat.taxonomy]
    cat.author_type = [types[p] if p >= 0 else "chat" for p in cat.primary]
    # a room's category is its author's primary category
    cat.room_category = (
        cat.primary[cat.authors.find(cat.room_author)[0]]
        if len(cat.room_ids)
        else np.zeros(0, np.int32)
    )


def author_type(category_name: str) -> str:
    low = category_name.lower()
    for kind, words in AUTHOR_TYPE_WORDS:
        if any(w in low for w in words):
            return kind
    return "chat"


def _embeddings(ctx, cat, kind, table, id_col, vec_col, dim, index: Index) -> None:
    seen = cat.has_emb[kind]
    for _, v in ctx.scan(table):
        ids = v.ints(id_col, "null_id")
        x = v.vec(vec_col, dim)
        pos, found = index.find(ids)
        v.mark("unknown_item", ~found, id_col)
        dup = np.zeros(len(ids), bool)
        cand = np.flatnonzero(v.ok)
        first = np.zeros(len(cand), bool)
        first[np.unique(pos[cand], return_index=True)[1]] = True
        dup[cand] = seen[pos[cand]] | ~first
        v.mark("duplicate_id", dup, id_col)
        rows = np.flatnonzero(v.ok)
        p = pos[rows]
        seen[p] = True
        t = pa.table(
            {
                "pos": p,
                "embedding": fixed_list(reduce_embedding(x[rows])),
                "full": var_list(x[rows]),
            },
            schema=_EMB,
        )
        chunk = p // CHUNK
        for c in np.unique(chunk):
            ctx.stats[table].out_rows += int(np.sum(chunk == c))
            cat.emb_spill.add(f"{kind}/{c:06d}", t.filter(pa.array(chunk == c)))


def write_catalog(ctx: Context, store: Store, cat: Catalog, keep_full: bool = True) -> int:
    n_videos, n_rooms = len(cat.video_ids), len(cat.room_ids)
    authors = pa.table(
        {
            "author_id": cat.author_ids,
            "author_type": pa.array(cat.author_type, pa.string()),
            "primary_category": cat.primary,
            "secondary_category": cat.secondary,
            "quality": cat.quality.astype(np.float32),
            "hosts_live": cat.hosts_live,
        },
        schema=S.AUTHORS_SCHEMA,
    ).append_column("fans_user_num", cat.fans_text)
    publish = np.where(cat.video_first_play == NO_TIME, 0, cat.video_first_play)
    videos = {
        "item_id": cat.video_ids,
        "author_id": cat.video_author,
        "category": cat.video_category.astype(np.int32),
        "duration_ms": cat.video_duration,
        "publish_time_ms": pa.array(publish, mask=cat.video_first_play == NO_TIME),
    }
    rooms = {
        "item_id": cat.room_ids,
        "author_id": cat.room_author,
        "category": cat.room_category.astype(np.int32),
        "start_ms": cat.room_start,
        "end_ms": pa.array(cat.room_end, mask=cat.room_end_null),
    }
    files = {
        "authors.parquet": parquet_bytes(authors),
        "short_videos.parquet": _with_embeddings(cat, "videos", videos, n_videos, S.SHORT_VIDEOS_SCHEMA, 128, keep_full),
        "rooms.parquet": _with_embeddings(cat, "rooms", rooms, n_rooms, S.ROOMS_SCHEMA, 64, keep_full),
        "taxonomy.json": json.dumps(
            {"level": "first_level_category_name", "categories": cat.taxonomy},
            ensure_ascii=False, indent=1,
        ).encode(),
    }  # fmt: skip
    ctx.stats["author_profile"].out_rows = len(cat.author_ids)
    rows = {"authors": len(cat.author_ids), "short_videos": n_videos, "rooms": n_rooms}
    return store.publish(
        CATALOG_DIR, files, {"rows": rows, "source": "kuailive_m3", "categories": len(cat.taxonomy)}
    )


def _with_embeddings(cat, kind, cols, n, schema, dim, keep_full) -> bytes:
    """The table written chunk by chunk, embeddings scattered in from the spill."""
    fields = [*schema, pa.field("has_embedding", pa.bool_())]
    if keep_full:
        fields.append(pa.field("embedding_full", pa.list_(pa.float32())))
    out_schema = pa.schema(fields)
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, out_schema, compression="zstd", use_dictionary=False) as w:
        for c in range(max(1, -(-n // CHUNK))):
            lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
            emb = np.zeros((hi - lo, S.EMBED_DIM), np.float32)
            full = np.zeros((hi - lo, dim), np.float32)
            part = cat.emb_spill.read(f"{kind}/{c:06d}")
            if part.num_rows:
                p = part.column("pos").to_numpy() - lo
                emb[p] = np.asarray(part.column("embedding").combine_chunks().flatten()).reshape(
                    -1, S.EMBED_DIM
                )
                full[p] = np.asarray(part.column("full").combine_chunks().flatten()).reshape(
                    -1, dim
                )
            has = cat.has_emb[kind][lo:hi]
            data = {
                k: (v[lo:hi] if not isinstance(v, pa.Array) else v.slice(lo, hi - lo))
                for k, v in cols.items()
            }
            data["embedding"] = fixed_list(emb)
            data["has_embedding"] = has
            if keep_full:
                data["embedding_full"] = var_list(full, has)
            w.write_table(pa.table(data, schema=out_schema))
    return buf.getvalue()


def _codes(values: pa.Array, table: dict) -> np.ndarray:
    """Codes of ``values`` in a growing first-seen dictionary ``table``; -1 for null."""
    enc = (
        pc.dictionary_encode(values).combine_chunks()
        if isinstance(values, pa.ChunkedArray)
        else pc.dictionary_encode(values)
    )
    local = np.array(
        [table.setdefault(x, len(table)) for x in enc.dictionary.to_pylist()] + [-1], np.int64
    )
    idx = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return local[idx]


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
