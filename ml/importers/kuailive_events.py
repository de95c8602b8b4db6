"""Events from the KuaiLive-M3 interaction tables, spilled per (domain, report hour).

Every source row yields its events or is rejected whole (one reason). ``event_id`` =
table prefix + 16 digits: ``row * 100000 + sub`` with ``row`` the row's 1-based index
in the table (all files in order) and ``sub`` the event's index within the row (see
``SUB``), so the same input always gives the same ids, and ids never collide.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml import schema as S
from ml.hours import HOUR_MS, landing_dir
from ml.importers.columns import to_str
from ml.importers.kuailive_catalog import Catalog
from ml.importers.kuailive_common import Context
from ml.importers.kuailive_source import Verdict
from ml.importers.spill import Spill
from ml.io.store import Store
from ml.sim.encode import format_lines, gzip_bytes, line_buffer
from ml.sim.events import Events

# event_id prefixes: same width, so string order = (table, row, sub) order.
PREFIX = {
    "live_show": "KL-show-",
    "live_interaction": "KL-sess-",
    "live_like": "KL-like-",
    "live_comment": "KL-cmnt-",
    "live_share": "KL-shar-",
    "photo_play": "KL-play-",
}
TABLE_CODE = {name: i for i, name in enumerate(PREFIX)}
DOMAIN = {name: (S.SHORT_VIDEO if name == "photo_play" else S.LIVE) for name in PREFIX}
ROW_KEY = 100_000
# sub-index of each event within its row: enter 0, exit 1, follow k: 10000 + k, gift k:
# 20000 + k (live_interaction); impression 0, play 1, like 2, follow 3 (photo_play).
SUB = {"enter": 0, "exit": 1, "follow": 10_000, "gift": 20_000}
SV_SUB = {"impression": 0, "play": 1, "like": 2, "follow": 3}
MAX_PER_SESSION = 9_999  # gifts or follows in one session; more is absurd (and would not fit)
# like_status_type values that mean "liked during this play" (compared as lower-case text)
LIKE_VALUES = ("1", "like", "liked", "true")
# page from live_source_category / enter_play_type: the first keyword found in the
# lower-cased value decides; anything else (including numeric codes) is "feed".
PAGE_WORDS = (
    ("follow", ("follow", "关注", "subscri")),
    ("search", ("search", "搜索")),
    ("live_square", ("square", "广场", "plaza", "live_hall")),
    ("explore", ("explore", "discover", "发现", "find", "hot", "精选", "featured")),
)
EVENT_SCHEMA = pa.schema(
    [
        ("code", pa.int8()),  # TABLE_CODE
        ("key", pa.int64()),
        ("etype", pa.int8()),  # index into the domain's event types
        ("user", pa.int64()),
        ("item", pa.int64()),
        ("author", pa.int64()),
        ("etime", pa.int64()),  # = report time
        ("page", pa.int8()),  # index into schema.PAGES
        ("watch", pa.int64()),  # -1: none
        ("duration", pa.int64()),  # -1: none
        ("gift", pa.float64()),  # NaN: none
    ]
)
_NAMES = list(PREFIX)
_RANK = np.argsort(np.argsort([PREFIX[n] for n in _NAMES]))  # table code -> prefix order
_LT = {n: i for i, n in enumerate(S.LIVE_EVENT_TYPES)}
_ST = {n: i for i, n in enumerate(S.SHORT_VIDEO_EVENT_TYPES)}


def page_of(name: str | None) -> int:
    low = (name or "").lower()
    for page, words in PAGE_WORDS:
        if any(w in low for w in words):
            return S.PAGES.index(page)
    return S.PAGES.index("feed")


def pages(col) -> np.ndarray:
    enc = pc.dictionary_encode(to_str(col))
    table = np.array([page_of(x) for x in enc.dictionary.to_pylist()] + [0], np.int8)
    return table[pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)]


class _Out:
    """Events of one batch, appended per event type."""

    def __init__(self, code: int, row_ids: np.ndarray):
        self.code, self.row_ids, self.parts = code, row_ids, []

    def add(self, rows, etype, sub, user, item, author, t, page, watch=None, dur=None, gift=None):
        n = len(rows)
        if not n:
            return
        self.parts.append(
            {
                "code": np.full(n, self.code, np.int8),
                "key": (self.row_ids[rows] + 1) * ROW_KEY + sub,
                "etype": np.full(n, etype, np.int8),
                "user": user[rows], "item": item[rows], "author": author[rows],
                "etime": t, "page": page[rows],
                "watch": np.full(n, -1, np.int64) if watch is None else watch,
                "duration": np.full(n, -1, np.int64) if dur is None else dur[rows],
                "gift": np.full(n, np.nan) if gift is None else gift,
            }
        )  # fmt: skip

    def table(self) -> pa.Table:
        if not self.parts:
            return EVENT_SCHEMA.empty_table()
        cols = {k: np.concatenate([p[k] for p in self.parts]) for k in EVENT_SCHEMA.names}
        return pa.table(cols, schema=EVENT_SCHEMA)


def _times(v: Verdict, times: dict[str, np.ndarray]) -> None:
    for col, t in times.items():
        v.mark("absurd_time", t < S.MIN_VALID_TIME_MS, col)


def at(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """values[pos], or zeros when the catalog table is empty (every row is then rejected)."""
    return values[pos] if len(values) else np.zeros(len(pos), values.dtype)


def _known(v: Verdict, cat: Catalog, item, item_col: str, user, live: bool) -> np.ndarray:
    pos, found = (cat.rooms if live else cat.videos).find(item)
    v.mark("unknown_item", ~found, item_col)
    if cat.users is not None:
        v.mark("unknown_user", ~cat.users.find(user)[1], "user_id")
    return pos


def map_batch(name: str, b, v: Verdict, cat: Catalog) -> pa.Table:
    """The events of one source batch (the verdict is marked for the rejected rows)."""
    row_ids = b.row0 + np.arange(b.n, dtype=np.int64)
    out = _Out(TABLE_CODE[name], row_ids)
    user = v.ints("user_id", "null_id")
    feed = np.zeros(b.n, np.int8)
    if name == "photo_play":
        _photo_play(b, v, cat, out, user)
        return out.table()
    item_col = "live_stream_id" if name == "live_comment" else "live_id"
    item = v.ints(item_col, "null_id")
    author = None if name == "live_like" else v.ints("author_id", "null_id")
    if name == "live_interaction":
        _interaction(b, v, cat, out, user, item, author)
        return out.table()
    tcol = {"live_show": "show_timestamp", "live_like": "like_timestamp",
            "live_comment": "comment_ts", "live_share": "share_timestamp"}[name]  # fmt: skip
    t = v.ints(tcol, "missing_time")
    _times(v, {tcol: t})
    pos = _known(v, cat, item, item_col, user, live=True)
    if author is None:
        author = at(cat.room_author, pos)
    rows = np.flatnonzero(v.ok)
    etype = {"live_show": "impression", "live_like": "like", "live_comment": "comment",
             "live_share": "share"}[name]  # fmt: skip
    out.add(rows, _LT[etype], 0, user, item, author, t[rows], feed)
    return out.table()


def _interaction(b, v: Verdict, cat: Catalog, out: _Out, user, item, author) -> None:
    start = v.ints("live_play_start_timestamp", "missing_time")
    end = v.ints("live_play_end_timestamp", "missing_time")
    watch = v.ints("play_duration", "missing_value")
    gift_cnt = v.ints("send_gift_cnt")  # null counts read as 0
    gift_num = v.ints("send_gift_num")
    follow_cnt = v.ints("follow_author_cnt")
    _times(v, {"live_play_start_timestamp": start, "live_play_end_timestamp": end})
    for col, x in (("play_duration", watch), ("send_gift_cnt", gift_cnt),
                   ("send_gift_num", gift_num), ("follow_author_cnt", follow_cnt)):  # fmt: skip
        v.mark("negative_value", x < 0, col)
    v.mark("end_before_start", end < start, "live_play_end_timestamp")
    # a session with gift items but no gift count gets one gift carrying them all
    n_gift = np.where(gift_cnt > 0, gift_cnt, (gift_num > 0).astype(np.int64))
    value = np.where(n_gift > 0, gift_num / np.maximum(n_gift, 1), 0.0)
    v.mark("absurd_value", watch > S.MAX_WATCH_MS, "play_duration")
    v.mark("absurd_value", n_gift > MAX_PER_SESSION, "send_gift_cnt")
    v.mark("absurd_value", value > S.MAX_GIFT_VALUE, "send_gift_num")
    v.mark("absurd_value", follow_cnt > MAX_PER_SESSION, "follow_author_cnt")
    _known(v, cat, item, "live_id", user, live=True)
    page = pages(b.raw.column("live_source_category"))
    rows = np.flatnonzero(v.ok)
    out.add(rows, _LT["enter"], SUB["enter"], user, item, author, start[rows], page)
    out.add(rows, _LT["exit"], SUB["exit"], user, item, author, end[rows], page, watch=watch[rows])
    for kind, counts in (("follow", follow_cnt), ("gift", n_gift)):
        r, k, t = spread(rows, counts, start, end)
        out.add(r, _LT[kind], SUB[kind] + k, user, item, author, t, page,
                gift=value[r] if kind == "gift" else None)  # fmt: skip


def spread(rows, counts, start, end) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, k, time) of counts[row] events per row, evenly spaced strictly inside the
    session when it has room: t_k = start + (k + 1) * (end - start) // (n + 1)."""
    n = counts[rows]
    r = np.repeat(rows, n)
    k = np.arange(len(r), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
    t = start[r] + ((k + 1) * (end[r] - start[r])) // (counts[r] + 1)
    return r, k, t


def _photo_play(b, v: Verdict, cat: Catalog, out: _Out, user) -> None:
    item = v.ints("photo_id", "null_id")
    author = v.ints("author_id", "null_id")
    enter = v.ints("enter_timestamp", "missing_time")
    leave = v.ints("leave_timestamp", "missing_time")
    before = v.ints("is_follow_before_play")
    after = v.ints("is_follow_after_play")
    _times(v, {"enter_timestamp": enter, "leave_timestamp": leave})
    v.mark("end_before_start", leave < enter, "leave_timestamp")
    watch = leave - enter
    v.mark("absurd_value", watch > S.MAX_WATCH_MS, "leave_timestamp")
    pos = _known(v, cat, item, "photo_id", user, live=False)
    liked = pc.is_in(
        pc.utf8_lower(pc.utf8_trim_whitespace(to_str(b.raw.column("like_status_type")))),
        value_set=pa.array(LIKE_VALUES),
    )
    liked = pc.fill_null(liked, False).to_numpy(zero_copy_only=False)
    page = pages(b.raw.column("enter_play_type"))
    dur = at(cat.video_duration, pos)
    rows = np.flatnonzero(v.ok)
    np.minimum.at(cat.video_first_play, pos[rows], enter[rows])
    args = (user, item, author)
    out.add(rows, _ST["impression"], SV_SUB["impression"], *args, enter[rows], page, dur=dur)
    out.add(rows, _ST["play"], SV_SUB["play"], *args, leave[rows], page, watch=watch[rows], dur=dur)
    lr = rows[liked[rows]]
    out.add(lr, _ST["like"], SV_SUB["like"], *args, leave[lr], page, dur=dur)
    fr = rows[(after[rows] == 1) & (before[rows] != 1)]
    out.add(fr, _ST["follow"], SV_SUB["follow"], *args, leave[fr], page, dur=dur)


def event_pass(ctx: Context, cat: Catalog, spill: Spill, hours: set[int]) -> None:
    """Map every event table present; events inside the window are spilled under
    ``<domain>/<hour ms>``, the others counted as outside_range."""
    for name in PREFIX:
        if not ctx.has(name):
            continue
        st = ctx.stats[name]
        types = S.EVENT_TYPES[DOMAIN[name]]
        for b, v in ctx.scan(name):
            ev = map_batch(name, b, v, cat)
            t = ev.column("etime").to_numpy()
            inside = ctx.window.inside(t)
            st.outside_range += int(np.sum(~inside))
            et = ev.column("etype").to_numpy()[inside]
            for code, k in zip(*np.unique(et, return_counts=True), strict=True):
                st.events[types[code]] += int(k)
            hour = t - t % HOUR_MS
            for h in np.unique(hour[inside]):
                hours.add(int(h))
                spill.add(
                    f"{DOMAIN[name]}/{int(h):015d}", ev.filter(pa.array(inside & (hour == h)))
                )


def write_event_hour(
    store: Store, spill, domain: str, hour: int, max_lines: int, pool
) -> tuple[int, int]:
    """Publish landing/<domain>/<hour>: the hour's events sorted by (report time, event_id),
    formatted and gzipped by the simulator's helpers; returns (lines, bytes written)."""
    t = spill.read(f"{domain}/{hour:015d}")
    code = t.column("code").to_numpy()
    key, etime = t.column("key").to_numpy(), t.column("etime").to_numpy()
    order = np.lexsort((key, _RANK[code], etime))  # = (report time, event_id)
    t, code = t.take(pa.array(order)), code[order]
    col = {name: t.column(name).to_numpy() for name in EVENT_SCHEMA.names}
    ev = Events(
        key=col["key"], etype=col["etype"], user=col["user"], item=col["item"],
        author=col["author"], etime=col["etime"], rtime=col["etime"], page=col["page"],
        watch=col["watch"], duration=col["duration"], gift=col["gift"],
    )  # fmt: skip
    pieces, where = [], np.empty(len(ev), np.int64)
    done = 0
    for c in np.unique(code):
        idx = np.flatnonzero(code == c)
        pieces.append(format_lines(ev.take(idx), PREFIX[_NAMES[c]], S.EVENT_TYPES[domain]))
        where[idx] = done + np.arange(len(idx))
        done += len(idx)
    lines = pa.concat_arrays(pieces).take(pa.array(where)) if pieces else pa.array([], pa.string())
    files, per_file = {}, {}
    for p in range(max(1, -(-len(lines) // max_lines))):
        part = lines.slice(p * max_lines, max_lines)
        name = f"part-{p:05d}.jsonl.gz"
        files[name] = gzip_bytes(line_buffer(part), pool)
        per_file[name] = len(part)
    rel = f"landing/{domain}/{landing_dir(hour)}"
    man = {"domain": domain, "hour": landing_dir(hour), "lines": per_file, "source": "kuailive_m3"}
    return len(lines), store.publish(rel, files, man)
