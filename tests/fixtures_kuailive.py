"""A tiny KuaiLive-M3 in the published layout: the reference file names, column names
(all of them, in order) and sensible types; Parquet where the dataset has Parquet, CSV
with a header where it has CSV, and ``live_emb_128_ts/`` as a directory of shards.

Every value is chosen by hand (the vectors are seeded), so tests can derive what the
importer must produce. ``bad_rows()`` lists rows that must be rejected, with the reason.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ml.hours import parse_hour

T0 = parse_hour("2026-01-01-00:00")
MIN = 60_000
SEC = 1_000

I64, I32, STR = pa.int64(), pa.int32(), pa.string()
F32_LIST = pa.list_(pa.float32())
# table -> (format, [(column, type)]); the columns of the published schema, in order.
LAYOUT: dict[str, tuple[str, list[tuple[str, pa.DataType]]]] = {
    "user_id_set": ("csv", [("user_id", I64)]),
    "author_profile": ("csv", [("author_id", I64), ("is_photo_author", I32), ("is_live_author", I32),
                               ("gender", STR), ("age_segment", STR), ("fans_user_num", STR)]),
    "live_show": ("parquet", [("live_id", I64), ("user_id", I64), ("author_id", I64),
                              ("show_timestamp", I64)]),
    "live_interaction": ("csv", [
        ("user_id", I64), ("author_id", I64), ("live_id", I64),
        ("live_play_start_timestamp", I64), ("live_play_end_timestamp", I64), ("p_date", STR),
        ("live_source_category", STR), ("enter_live_action", I32), ("is_auto_play", I32),
        ("is_follow_enter", I32), ("is_follow_leave", I32), ("play_duration", I64),
        ("like_cnt", I32), ("comment_cnt", I32), ("send_gift_cnt", I32), ("send_gift_num", I32),
        ("follow_author_cnt", I32), ("cancel_follow_author_cnt", I32), ("share_cnt", I32),
        ("report_live_cnt", I32)]),
    "live_like": ("csv", [("user_id", I64), ("live_id", I64), ("like_timestamp", I64)]),
    "live_comment": ("csv", [("live_stream_id", I64), ("user_id", I64), ("author_id", I64),
                             ("content", STR), ("comment_ts", I64)]),
    "live_share": ("csv", [("user_id", I64), ("live_id", I64), ("author_id", I64),
                           ("share_timestamp", I64), ("is_share_success", I32)]),
    "live_room_set": ("csv", [("live_id", I64)]),
    "live_room_meta": ("parquet", [("live_id", I64), ("author_id", I64), ("live_name", STR),
                                   ("start_timestamp", I64), ("end_timestamp", I64),
                                   ("live_duration", I64)]),
    "live_emb_64": ("parquet", [("live_id", I64), ("embedding", F32_LIST)]),
    "live_emb_128_ts": ("shards", [("live_stream_id", STR), ("segment_id", STR),
                                   ("feature_128", F32_LIST), ("timestamp", I64)]),
    "photo_interaction": ("csv", [
        ("user_id", I64), ("photo_id", I64), ("author_id", I64), ("show_cnt", I32),
        ("complete_play_cnt", I32), ("play_progress", pa.float64()), ("like_cnt", I32),
        ("cancel_like_cnt", I32), ("direct_comment_cnt", I32), ("reply_comment_cnt", I32),
        ("comment_stay_duration", I64), ("follow_cnt", I32), ("cancel_follow_cnt", I32),
        ("share_cnt", I32)]),
    "photo_play": ("parquet", [
        ("user_id", I64), ("photo_id", I64), ("author_id", I64), ("enter_timestamp", I64),
        ("leave_timestamp", I64), ("enter_play_type", STR), ("is_complete_play", I32),
        ("like_status_type", I32), ("is_follow_before_play", I32), ("is_follow_after_play", I32)]),
    "photo_meta": ("parquet", [("photo_id", I64), ("author_id", I64), ("duration", I64),
                               ("display_type", STR), ("cover_title", STR), ("video_texts", STR)]),
    "photo_tag": ("csv", [("photo_id", I64), ("first_level_category_name", STR),
                          ("second_level_category_name", STR), ("third_level_category_name", STR),
                          ("fourth_level_category_name", STR)]),
    "photo_emb_128": ("parquet", [("photo_id", I64), ("feature", F32_LIST)]),
}  # fmt: skip

ROOM_START = {3001: T0 + 5 * MIN, 3002: T0 + 20 * MIN, 3003: T0 + 100 * MIN}
# segment end offsets (s) from the room start; 3001's are split over the two shards
SEGMENT_ENDS = {
    3001: [20, 50, 70, 95, 125, 160, 170, 200, 236, 270, 301, 330],
    3002: [15, 45, 61, 90, 118],
    3003: [25, 60, 88, 120, 150, 190, 215],
}
SEGMENT_SHARD = {3001: (0, 7), 3002: (0, 5), 3003: (1, 7)}  # 3001: rows 0..6 shard 0, rest 1


def vec(seed: int, dim: int) -> list[float]:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32).tolist()


def session(user, author, live, start, end, source, gift_cnt=0, gift_num=0, follow=0, **kw):
    row = {
        "user_id": user, "author_id": author, "live_id": live,
        "live_play_start_timestamp": start, "live_play_end_timestamp": end,
        "p_date": "20260101", "live_source_category": source, "enter_live_action": 1,
        "is_auto_play": 0, "is_follow_enter": 0, "is_follow_leave": int(follow > 0),
        "play_duration": None if None in (start, end) else end - start, "like_cnt": 0, "comment_cnt": 0,
        "send_gift_cnt": gift_cnt, "send_gift_num": gift_num, "follow_author_cnt": follow,
        "cancel_follow_author_cnt": 0, "share_cnt": 0, "report_live_cnt": 0,
    }  # fmt: skip
    row.update(kw)
    return row


def play(user, photo, author, enter, leave, kind="FEED", like=0, before=0, after=0):
    return {
        "user_id": user, "photo_id": photo, "author_id": author, "enter_timestamp": enter,
        "leave_timestamp": leave, "enter_play_type": kind, "is_complete_play": 0,
        "like_status_type": like, "is_follow_before_play": before, "is_follow_after_play": after,
    }  # fmt: skip


def clean_tables() -> dict[str, list[dict]]:
    t = {}
    t["user_id_set"] = [{"user_id": u} for u in range(1, 7)]
    t["author_profile"] = [
        {"author_id": 101, "is_photo_author": 1, "is_live_author": 1, "gender": "M",
         "age_segment": "24-30", "fans_user_num": "10000-100000"},
        {"author_id": 102, "is_photo_author": 0, "is_live_author": 1, "gender": "F",
         "age_segment": "18-23", "fans_user_num": "1000-10000"},
        {"author_id": 103, "is_photo_author": 1, "is_live_author": 0, "gender": "U",
         "age_segment": "31-40", "fans_user_num": "0-10"},
        {"author_id": 104, "is_photo_author": 1, "is_live_author": 0, "gender": "F",
         "age_segment": "41-49", "fans_user_num": "100000+"},
    ]  # fmt: skip
    videos = [(2001, 101, 15_000), (2002, 101, 30_000), (2003, 103, 60_000),
              (2004, 103, 45_000), (2005, 104, 20_000), (2006, 104, 58_000)]  # fmt: skip
    t["photo_meta"] = [
        {"photo_id": p, "author_id": a, "duration": d, "display_type": "normal",
         "cover_title": f"cover {p}", "video_texts": f"text of {p}"}
        for p, a, d in videos
    ]  # fmt: skip
    names = {2001: "游戏", 2002: "生活", 2003: "音乐", 2004: "美食", 2005: "音乐", 2006: "音乐"}
    t["photo_tag"] = [
        {"photo_id": p, "first_level_category_name": n, "second_level_category_name": n + "-2",
         "third_level_category_name": None, "fourth_level_category_name": None}
        for p, n in names.items()
    ]  # fmt: skip
    t["photo_emb_128"] = [{"photo_id": p, "feature": vec(p, 128)} for p, _, _ in videos]
    t["live_room_meta"] = [
        {"live_id": 3001, "author_id": 101, "live_name": "game night",
         "start_timestamp": ROOM_START[3001], "end_timestamp": T0 + 150 * MIN,
         "live_duration": 145 * MIN},
        {"live_id": 3002, "author_id": 102, "live_name": "chat, tea & songs",
         "start_timestamp": ROOM_START[3002], "end_timestamp": None, "live_duration": None},
        {"live_id": 3003, "author_id": 101, "live_name": "late game",
         "start_timestamp": ROOM_START[3003], "end_timestamp": T0 + 170 * MIN,
         "live_duration": 70 * MIN},
    ]  # fmt: skip
    t["live_room_set"] = [{"live_id": r} for r in ROOM_START]
    t["live_emb_64"] = [{"live_id": r, "embedding": vec(r, 64)} for r in ROOM_START]
    t["live_show"] = [
        {"live_id": r, "user_id": u, "author_id": a, "show_timestamp": T0 + m * MIN + s}
        for r, u, a, m, s in [(3001, 1, 101, 9, 0), (3001, 2, 101, 49, 500), (3002, 3, 102, 29, 1),
                              (3001, 6, 101, 40, 0), (3002, 5, 102, 64, 0), (3003, 4, 101, 104, 0),
                              (3002, 5, 102, 124, 3), (3003, 6, 101, 130, 0)]
    ]  # fmt: skip
    t["live_interaction"] = [
        session(1, 101, 3001, T0 + 10 * MIN, T0 + 25 * MIN, "FOLLOW", 3, 10, 1),
        session(2, 101, 3001, T0 + 50 * MIN, T0 + 70 * MIN, "LIVE_SQUARE"),
        session(3, 102, 3002, T0 + 30 * MIN, T0 + 31 * MIN, "SEARCH", 0, 5, 2),
        session(4, 101, 3003, T0 + 105 * MIN, T0 + 130 * MIN, "FEED", 2, 2),
        session(5, 102, 3002, T0 + 125 * MIN, T0 + 140 * MIN, "OTHER", 1, 7),
    ]
    t["live_like"] = [
        {"user_id": u, "live_id": r, "like_timestamp": T0 + m * MIN}
        for u, r, m in [(1, 3001, 12), (1, 3001, 13), (2, 3001, 61), (4, 3003, 110), (3, 3002, 30)]
    ]
    t["live_comment"] = [
        {"live_stream_id": r, "user_id": u, "author_id": a, "content": c, "comment_ts": T0 + m * MIN}
        for r, u, a, c, m in [
            (3001, 1, 101, "nice play, again!", 14),
            (3001, 2, 101, 'two\nlines "quoted"', 55),
            (3002, 3, 102, "你好", 30),
            (3003, 4, 101, "", 120),
        ]
    ]  # fmt: skip
    t["live_share"] = [
        {"user_id": u, "live_id": r, "author_id": a, "share_timestamp": T0 + m * MIN,
         "is_share_success": ok}
        for u, r, a, m, ok in [(1, 3001, 101, 20, 1), (4, 3003, 101, 125, 0), (5, 3002, 102, 130, 1)]
    ]  # fmt: skip
    t["photo_play"] = [
        play(1, 2001, 101, T0 + 1 * MIN, T0 + 1 * MIN + 12 * SEC, "FEED", like=1),
        play(1, 2002, 101, T0 + 2 * MIN, T0 + 2 * MIN + 30 * SEC, "FEED", after=1),
        play(2, 2003, 103, T0 + 33 * MIN, T0 + 34 * MIN, "FOLLOW", like=2, before=1, after=1),
        play(3, 2004, 103, T0 + 59 * MIN + 50 * SEC, T0 + 60 * MIN + 20 * SEC, "SEARCH", like=1, after=1),
        play(4, 2005, 104, T0 + 75 * MIN, T0 + 75 * MIN + 5 * SEC, "DISCOVER"),
        play(5, 2006, 104, T0 + 90 * MIN, T0 + 91 * MIN, "FEED", like=1),
        play(6, 2001, 101, T0 + 121 * MIN, T0 + 121 * MIN + 15 * SEC, "LIVE_SQUARE"),
        play(2, 2005, 104, T0 + 150 * MIN, T0 + 150 * MIN, "FEED"),  # a zero-length play
    ]  # fmt: skip
    t["photo_interaction"] = [
        {"user_id": 1, "photo_id": 2001, "author_id": 101, "show_cnt": 2, "complete_play_cnt": 1,
         "play_progress": 0.8, "like_cnt": 1, "cancel_like_cnt": 0, "direct_comment_cnt": 0,
         "reply_comment_cnt": 0, "comment_stay_duration": 0, "follow_cnt": 0,
         "cancel_follow_cnt": 0, "share_cnt": 0},
    ]  # fmt: skip
    seg = []
    for r, ends in SEGMENT_ENDS.items():
        for i, e in enumerate(ends):
            seg.append(
                {"live_stream_id": str(r), "segment_id": f"{r}_{i}",
                 "feature_128": vec(r * 1000 + i, 128), "timestamp": ROOM_START[r] + e * SEC}
            )  # fmt: skip
    t["live_emb_128_ts"] = seg
    return t


def segment_shard(row: dict) -> int:
    r = int(row["live_stream_id"])
    shard, split = SEGMENT_SHARD.get(r, (1, 0))
    i = int(row["segment_id"].rsplit("_", 1)[-1]) if "_" in row["segment_id"] else 0
    return 0 if shard == 0 and i < split else 1


def bad_rows() -> dict[str, list[tuple[dict | str, str]]]:
    """Rows to append to the clean tables, each with the reason it must be rejected for."""
    good_like = {"user_id": 1, "live_id": 3001, "like_timestamp": T0 + 15 * MIN}
    return {
        "author_profile": [
            (
                {
                    "author_id": "x1",
                    "is_photo_author": 1,
                    "is_live_author": 0,
                    "gender": "M",
                    "age_segment": "24-30",
                    "fans_user_num": "0-10",
                },
                "wrong_type",
            ),
        ],
        "live_like": [
            ({**good_like, "live_id": 9999}, "unknown_item"),
            ({**good_like, "like_timestamp": "abc"}, "wrong_type"),
            ({**good_like, "user_id": None}, "null_id"),
            ({**good_like, "like_timestamp": 5}, "absurd_time"),
        ],
        "live_share": [
            (
                {
                    "user_id": 99,
                    "live_id": 3001,
                    "author_id": 101,
                    "share_timestamp": T0 + MIN,
                    "is_share_success": 1,
                },
                "unknown_user",
            ),
        ],
        "live_comment": [("3001,1,101", "malformed_row")],
        "live_show": [
            ({"live_id": 3001, "user_id": None, "author_id": 101, "show_timestamp": T0}, "null_id"),
        ],
        "live_interaction": [
            (
                session(1, 101, 3001, T0 + 5 * MIN, T0 + 6 * MIN, "FEED", play_duration=-5),
                "negative_value",
            ),
            (
                session(1, 101, 3001, T0 + 8 * MIN, T0 + 7 * MIN, "FEED", play_duration=0),
                "end_before_start",
            ),
            (
                session(1, 101, 3001, T0 + 8 * MIN, T0 + 9 * MIN, "FEED", 20_000, 20_000),
                "absurd_value",
            ),
            (session(1, 101, 3001, None, T0 + 9 * MIN, "FEED"), "missing_time"),
        ],
        "photo_play": [
            (play(1, 2001, 101, T0 + 5 * MIN, T0 + 4 * MIN), "end_before_start"),
            (play(1, 7777, 101, T0 + 5 * MIN, T0 + 6 * MIN), "unknown_item"),
        ],
        "photo_meta": [
            (
                {
                    "photo_id": 2007,
                    "author_id": 103,
                    "duration": -1,
                    "display_type": "normal",
                    "cover_title": "",
                    "video_texts": "",
                },
                "negative_value",
            ),
            (
                {
                    "photo_id": 2001,
                    "author_id": 101,
                    "duration": 9_000,
                    "display_type": "normal",
                    "cover_title": "again",
                    "video_texts": "",
                },
                "duplicate_id",
            ),
        ],
        "live_room_meta": [
            (
                {
                    "live_id": 3009,
                    "author_id": 555,
                    "live_name": "ghost",
                    "start_timestamp": T0,
                    "end_timestamp": None,
                    "live_duration": None,
                },
                "unknown_author",
            ),
        ],
        "photo_emb_128": [({"photo_id": 2002, "feature": vec(1, 100)}, "bad_embedding")],
        "live_emb_128_ts": [
            (
                {
                    "live_stream_id": "3009",
                    "segment_id": "x_0",
                    "feature_128": vec(2, 128),
                    "timestamp": T0 + 10 * MIN,
                },
                "unknown_item",
            ),
            (
                {
                    "live_stream_id": "3002",
                    "segment_id": "3002_9",
                    "feature_128": vec(3, 128),
                    "timestamp": ROOM_START[3002] + 45 * SEC,
                },
                "duplicate_segment",
            ),
            (
                {
                    "live_stream_id": "3003",
                    "segment_id": "3003_9",
                    "feature_128": vec(4, 64),
                    "timestamp": ROOM_START[3003] + 300 * SEC,
                },
                "bad_embedding",
            ),
            (
                {
                    "live_stream_id": "3003",
                    "segment_id": "3003_8",
                    "feature_128": vec(5, 128),
                    "timestamp": ROOM_START[3003] - SEC,
                },
                "before_room_start",
            ),
        ],
    }


def with_bad_rows(tables: dict[str, list[dict]]) -> dict[str, list]:
    out = {k: list(v) for k, v in tables.items()}
    for name, rows in bad_rows().items():
        out[name] += [row for row, _ in rows]
    return out


def write_tables(
    root: str | os.PathLike, tables: dict[str, list], omit: tuple[str, ...] = ()
) -> Path:
    """Write ``tables`` (rows as dicts; a str row is written to a CSV as a raw line)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        if name in omit:
            continue
        fmt, cols = LAYOUT[name]
        if fmt == "csv":
            _write_csv(root / f"{name}.csv", [c for c, _ in cols], rows)
        elif fmt == "parquet":
            pq.write_table(_table(rows, cols), root / f"{name}.parquet")
        else:
            shard_dir = root / name
            shard_dir.mkdir(exist_ok=True)
            for s in (0, 1):
                part = [r for r in rows if segment_shard(r) == s]
                pq.write_table(_table(part, cols), shard_dir / f"part-{s:05d}.parquet")
    return root


def _table(rows: list[dict], cols) -> pa.Table:
    schema = pa.schema(cols)
    return pa.Table.from_pylist([{c: r.get(c) for c, _ in cols} for r in rows], schema=schema)


def _write_csv(path: Path, columns: list[str], rows: list) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            if isinstance(r, str):
                f.write(r + "\n")
            else:
                w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])


def write_kuailive(root: str | os.PathLike, *, bad: bool = False, omit: tuple[str, ...] = ()):
    """Write the fixture; returns the tables written (rows as dicts)."""
    tables = clean_tables()
    if bad:
        tables = with_bad_rows(tables)
    write_tables(root, tables, omit)
    return tables
