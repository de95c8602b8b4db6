"""Malformed landing lines, cycling through every quarantine class.

Each line is built so that the first-applicable rule of schema.QUARANTINE_REASONS gives
exactly its class: it breaks that rule and every rule checked before it holds (an
``unknown_item`` line has valid ids, times and values; a ``negative_value`` line has
valid times; ...). Bad lines get their own event ids ("X..."), never a real event's, so
none of them can be mistaken for a duplicate. They are added to the real lines, not
substituted, so the clean events stay complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ml import schema as S
from ml.hours import HOUR_MS
from ml.sim.config import BAD, SimConfig, rng
from ml.sim.world import DAY_MS, ROOM_ID_BASE

_UNKNOWN_TYPES = {
    S.LIVE: ("click", "purchase", "play", "Impression"),  # "play" is a short-video type
    S.SHORT_VIDEO: ("view", "purchase", "gift", "enter"),  # "gift"/"enter" are live types
}
_UNKNOWN_ITEM_BASE = 9_000_000_000  # above every video and room id
_YEAR_1990_MS = 631_152_000_000


# The simulator plants every bad class but invalid UTF-8 (the sink writes text; tests build
# it by hand, byte by byte) and unknown pages (its clients send only known pages; tests
# build them by hand): the cycle of planted classes is the one the demo lake was built on.
PLANTED_REASONS = tuple(
    r for r in S.QUARANTINE_REASONS if r not in ("invalid_utf8", "unknown_page")
)


@dataclass(frozen=True)
class BadLine:
    reason: str
    detail: str
    text: str  # without the newline
    event_id: str | None


class BadLineMaker:
    """Per domain; the class cycle continues across hours (and is the same for any run
    length, since hours are made in order)."""

    def __init__(self, cfg: SimConfig, domain: str, n_users: int, n_videos: int):
        self.cfg, self.domain = cfg, domain
        self.domain_index = S.DOMAINS.index(domain)
        self.n_users, self.n_videos = n_users, n_videos
        self.next_class = 0
        self.serial = 0
        self.variant = dict.fromkeys(S.QUARANTINE_REASONS, 0)

    def make(
        self, n_good: int, hour_index: int, hour_ms: int, items: np.ndarray, authors: np.ndarray
    ) -> tuple[list[BadLine], np.ndarray]:
        """Bad lines for one landing file of ``n_good`` real lines, and for each the index
        of the real line it goes before (n_good = at the end), ascending.

        ``items``/``authors``: real items of the domain (and their author ids) to use as
        templates; may be empty.
        """
        rate = self.cfg.bad_rate
        g = rng(self.cfg.seed, BAD, hour_index, self.domain_index)
        if rate <= 0:
            return [], np.zeros(0, np.int64)
        n_bad = int(np.floor(n_good * rate / (1 - rate) + g.random()))
        lines = []
        for _ in range(n_bad):
            reason = PLANTED_REASONS[self.next_class % len(PLANTED_REASONS)]
            self.next_class += 1
            v = self.variant[reason]
            self.variant[reason] += 1
            self.serial += 1
            eid = f"X{'L' if self.domain == S.LIVE else 'S'}{hour_index:05d}{self.serial:010d}"
            lines.append(self._line(g, reason, v, eid, hour_ms, items, authors))
        return lines, np.sort(g.integers(0, n_good + 1, n_bad))

    # ---- one line -------------------------------------------------------------------------
    def _template(self, g, etype, eid, hour_ms, items, authors) -> dict:
        """A valid record of this domain (the bad line then breaks one rule)."""
        report = hour_ms + int(g.integers(10_000, HOUR_MS - 10_000))
        if len(items):
            k = int(g.integers(0, len(items)))
            item, author = int(items[k]), int(authors[k])
        else:  # no real item yet: only classes decided before unknown_item can use this
            item, author = _UNKNOWN_ITEM_BASE, 1
        rec = {
            "event_id": eid,
            "event_type": etype,
            "user_id": int(g.integers(1, self.n_users + 1)),
            "item_id": item,
            "author_id": author,
            "event_time_ms": report - int(g.integers(200, 3_000)),
            "report_time_ms": report,
            "page": S.PAGES[int(g.integers(0, len(S.PAGES)))],
        }
        if self.domain == S.SHORT_VIDEO:
            rec["duration_ms"] = int(g.integers(5_000, 120_000))
            if etype == "play":
                rec["watch_ms"] = int(g.integers(1_000, rec["duration_ms"]))
        elif etype == "exit":
            rec["watch_ms"] = int(g.integers(1_000, 600_000))
        elif etype == "gift":
            rec["gift_value"] = float(g.integers(1, 500)) + 0.5
        return rec

    def _line(self, g, reason, v, eid, hour_ms, items, authors) -> BadLine:
        live = self.domain == S.LIVE
        valued = ("exit", "gift")[v % 2] if live else "play"  # types with a per-type field
        common = ("impression", "impression", "enter" if live else "play", "like")[v % 4]
        etype = valued if reason in _VALUED else common
        rec = self._template(g, etype, eid, hour_ms, items, authors)
        report = rec["report_time_ms"]
        detail = reason
        if reason == "empty_line":
            return BadLine(reason, "blank", ("", "   ", "\t")[v % 3], None)
        if reason == "malformed_json":
            text = _dump(rec)
            kind = v % 4
            if kind == 0:  # truncated: the only "}" is the last character, so no prefix parses
                text = text[: int(g.integers(1, len(text) - 1))]
            elif kind == 1:
                text = _dump([rec])
            elif kind == 2:
                text = json.dumps(etype)
            else:
                text = text + text
            detail = ("truncated", "json_array", "json_scalar", "two_objects")[kind]
            return BadLine(reason, detail, text, eid)
        if reason == "wrong_type":
            kind = v % 4
            if kind == 0:
                rec["user_id"] = f"u{rec['user_id']}"
            elif kind == 1:
                rec["event_type"] = "exit" if live else "play"
                rec["watch_ms"] = 12.5
            elif kind == 2:
                rec["report_time_ms"] = str(report)
            else:
                rec["item_id"] = rec["item_id"] + 0.5
            detail = ("user_id_string", "watch_ms_float", "report_time_string", "item_id_float")[
                kind
            ]
        elif reason == "missing_id":
            name = S.ID_FIELDS[v % len(S.ID_FIELDS)]
            if (v // len(S.ID_FIELDS)) % 2:
                rec[name] = None
            else:
                del rec[name]
            detail = f"no_{name}"
        elif reason == "unknown_event_type":
            rec["event_type"] = _UNKNOWN_TYPES[self.domain][v % 4]
            detail = rec["event_type"]
        elif reason == "missing_field":
            name = "gift_value" if etype == "gift" else ("watch_ms", "duration_ms")[(v // 2) % 2]
            if etype == "exit":
                name = "watch_ms"
            del rec[name]
            detail = f"{etype}_without_{name}"
        elif reason == "missing_time":
            name = S.TIME_FIELDS[v % 2]
            if (v // 2) % 2:
                rec[name] = None
            else:
                del rec[name]
            detail = f"no_{name}"
        elif reason == "report_time_outside_partition":
            if v % 2:
                report = hour_ms + HOUR_MS + int(g.integers(0, 2 * HOUR_MS))
            else:
                report = hour_ms - int(g.integers(1, 2 * HOUR_MS))
            rec["report_time_ms"] = report
            rec["event_time_ms"] = report - int(g.integers(200, 3_000))
            detail = ("previous_hour", "later_hour")[v % 2]
        elif reason == "event_time_absurd":
            if v % 2:
                rec["event_time_ms"] = report - 8 * DAY_MS - int(g.integers(0, 20 * DAY_MS))
            else:
                rec["event_time_ms"] = _YEAR_1990_MS + int(g.integers(0, DAY_MS))
            detail = ("year_1990", "older_than_7_days")[v % 2]
        elif reason == "event_after_report":
            rec["event_time_ms"] = report + DAY_MS
            detail = "event_1_day_after_report"
        elif reason in ("negative_value", "absurd_value"):
            name = _value_field(etype, v)
            neg = reason == "negative_value"
            if name == "gift_value":
                rec[name] = -float(g.integers(1, 100)) - 0.5 if neg else 1e9
            elif name == "watch_ms":
                rec[name] = -int(g.integers(1, 60_000)) if neg else 10 * DAY_MS
            else:
                rec[name] = -int(g.integers(1, 60_000)) if neg else S.MAX_DURATION_MS + HOUR_MS
            detail = f"{name}_{'negative' if neg else 'absurd'}"
        elif reason == "unknown_item":
            if v % 2 and live and self.n_videos:
                rec["item_id"] = int(g.integers(1, self.n_videos + 1))  # a video, not a room
                detail = "video_id_in_live"
            elif v % 2 and not live:
                rec["item_id"] = ROOM_ID_BASE + int(g.integers(0, 1000))  # a room, not a video
                detail = "room_id_in_short_video"
            else:
                rec["item_id"] = _UNKNOWN_ITEM_BASE + int(g.integers(0, 10**6))
                detail = "unknown_id"
        return BadLine(reason, detail, _dump(rec), rec.get("event_id"))


_VALUED = ("missing_field", "negative_value", "absurd_value")


def _value_field(etype: str, v: int) -> str:
    if etype == "gift":
        return "gift_value"
    if etype == "exit":
        return "watch_ms"
    return ("watch_ms", "duration_ms")[(v // 2) % 2]


def _dump(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))
