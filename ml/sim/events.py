"""The event record in columnar form, and small helpers shared by the two domains.

Everything is columnar numpy: an exposure is a row, an event is a row, and the per-event
"loops" (likes during a watch, say) are np.repeat over counts drawn per exposure.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml import schema as S

# event_id = domain letter + 16 digits: hour index * KEY_HOUR + rank of the event time.
KEY_HOUR = 10**11
LIVE_T = {name: i for i, name in enumerate(S.LIVE_EVENT_TYPES)}
SV_T = {name: i for i, name in enumerate(S.SHORT_VIDEO_EVENT_TYPES)}


@dataclass
class Events:
    """Columnar events of one domain. Nulls: -1 for watch/duration, NaN for gift."""

    key: np.ndarray  # int64 event number; the event_id is its zero-padded digits
    etype: np.ndarray  # int8 index into the domain's event types
    user: np.ndarray  # user_id
    item: np.ndarray  # item_id
    author: np.ndarray  # author_id
    etime: np.ndarray  # event_time_ms
    rtime: np.ndarray  # report_time_ms
    page: np.ndarray  # int8 index into schema.PAGES
    watch: np.ndarray  # watch_ms
    duration: np.ndarray  # duration_ms
    gift: np.ndarray  # gift_value

    def __len__(self) -> int:
        return len(self.key)

    def take(self, idx: np.ndarray | slice) -> Events:
        return Events(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @classmethod
    def concat(cls, parts: list[Events]) -> Events:
        if not parts:
            return cls.empty()
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )

    @classmethod
    def empty(cls) -> Events:
        z = np.zeros(0, np.int64)
        return cls(z, z.astype(np.int8), z, z, z, z, z, z.astype(np.int8), z, z, z.astype(float))


class EventBuilder:
    """Collects event groups (one per event type) that share per-exposure columns."""

    def __init__(self, user, item, author, page, duration=None):
        self.cols = {"user": user, "item": item, "author": author, "page": page}
        self.duration = duration
        self.parts: list[Events] = []

    def add(self, etype: int, rows: np.ndarray, times: np.ndarray, watch=None, gift=None) -> None:
        n = len(rows)
        c = {k: v[rows] for k, v in self.cols.items()}
        self.parts.append(
            Events(
                key=np.zeros(n, np.int64),
                etype=np.full(n, etype, np.int8),
                etime=times.astype(np.int64),
                rtime=np.zeros(n, np.int64),
                watch=np.full(n, -1, np.int64) if watch is None else watch.astype(np.int64),
                duration=np.full(n, -1, np.int64) if self.duration is None else self.duration[rows],
                gift=np.full(n, np.nan) if gift is None else gift,
                **c,
            )
        )

    def build(self) -> Events:
        return Events.concat(self.parts)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def event_ids(prefix: str, keys: np.ndarray) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(keys, pa.int64()), pa.string()), 16, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def pages(g: np.random.Generator, follows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """A page per exposure from the row of ``table`` chosen by whether the user follows."""
    cum = np.cumsum(table, axis=1)[follows.astype(np.int64)]
    return np.minimum((cum < g.random(len(follows))[:, None]).sum(axis=1), len(S.PAGES) - 1).astype(
        np.int8
    )


def during(
    g: np.random.Generator, start: np.ndarray, length: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """A uniform time strictly inside (start, start + length) for each of ``rows``."""
    span = np.maximum(length[rows] - 1, 1)
    return start[rows] + 1 + (g.random(len(rows)) * span).astype(np.int64)


def take(plan: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in plan.items()}
