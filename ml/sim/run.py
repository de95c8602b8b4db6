"""``simulate``: run the platform hour by hour and write landing + oracle through a Store.

Hour i is generated from (seed, i) plus the state carried from earlier hours (rooms,
follows), and a landing hour is written as soon as nothing later can be reported into
it — right after its own events are made, since an event is never reported before it
happens. So a 4-hour run is byte-for-byte the first 4 hours of an 8-hour run.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from ml import schema as S
from ml.hours import HOUR_MS, landing_dir
from ml.io.store import Store, parquet_bytes
from ml.sim.activity import simulate_hour
from ml.sim.bad import BadLine, BadLineMaker
from ml.sim.config import CORRUPT, PRE_HOURS, SimConfig, rng
from ml.sim.content import content_hour
from ml.sim.encode import format_lines, gzip_bytes, line_buffer
from ml.sim.events import Events, event_ids
from ml.sim.reporting import deliver, split_by_report_hour
from ml.sim.rooms import RoomPool
from ml.sim.world import World, build_world

_PREFIX = {S.LIVE: "L", S.SHORT_VIDEO: "S"}


@dataclass
class SimSummary:
    out: str
    start: str
    hours: int
    users: int
    seed: int
    events: dict[str, dict[str, int]] = field(default_factory=dict)  # good lines by type
    lines: dict[str, int] = field(default_factory=dict)  # every landing line
    duplicates: dict[str, int] = field(default_factory=dict)
    late: dict[str, int] = field(default_factory=dict)
    bad_lines: dict[str, int] = field(default_factory=dict)
    corrupt_files: int = 0
    live_exposures: int = 0
    segments: int = 0
    rooms: int = 0
    authors: int = 0
    videos: int = 0
    bytes_written: int = 0
    seconds: float = 0.0

    @property
    def total_lines(self) -> int:
        return sum(self.lines.values())

    @property
    def events_per_second(self) -> float:
        return self.total_lines / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        per = ", ".join(f"{d} {self.lines.get(d, 0):,}" for d in S.DOMAINS)
        return (
            f"sim: {self.hours} h x {self.users:,} users (seed {self.seed}) -> {self.out}: "
            f"lines {per}; {sum(self.duplicates.values()):,} duplicates, "
            f"{sum(self.late.values()):,} late, {sum(self.bad_lines.values()):,} bad, "
            f"{self.corrupt_files} corrupt files; {self.rooms:,} rooms, {self.segments:,} segments; "
            f"{self.bytes_written / 1e6:.1f} MB in {self.seconds:.1f} s "
            f"({self.events_per_second:,.0f} lines/s)"
        )


def simulate(
    cfg: SimConfig, store_or_path: Store | str | os.PathLike, progress: bool = True
) -> SimSummary:
    """Simulate ``cfg.hours`` hours from ``cfg.start`` and write everything under the root."""
    t_start = time.perf_counter()
    store = store_or_path if isinstance(store_or_path, Store) else Store(os.fspath(store_or_path))
    store.check_reachable()
    run = _Run(cfg, store)
    # gzip threads; the bytes do not depend on how many
    threads = cfg.n_threads
    with (
        ThreadPoolExecutor(threads) if threads > 1 else contextlib.nullcontext() as executor,
        tqdm(total=cfg.hours, desc="sim", unit="h", file=sys.stderr, disable=not progress) as bar,
    ):
        run.executor = executor
        for i in range(cfg.hours):
            run.hour(i)
            bar.set_postfix(lines=f"{run.summary.total_lines:,}", refresh=False)
            bar.update()
    run.finish()
    run.summary.seconds = time.perf_counter() - t_start
    return run.summary


class _Run:
    def __init__(self, cfg: SimConfig, store: Store):
        self.cfg, self.store = cfg, store
        self.start_ms = cfg.start_ms
        self.end_ms = self.start_ms + cfg.hours * HOUR_MS
        self.executor = None
        self.world: World = build_world(cfg)
        self.pool = RoomPool(self.world, cfg)
        for j in range(-PRE_HOURS, 0):
            self.pool.schedule_hour(j, self.start_ms + j * HOUR_MS)
        self.pending: dict[tuple[str, int], list[Events]] = defaultdict(list)
        w = self.world
        self.bad = {d: BadLineMaker(cfg, d, w.n_users, w.n_videos) for d in S.DOMAINS}
        self.corrupt = _corrupt_choice(cfg)
        self.dup_rows: list[pa.Table] = []
        self.bad_rows: list[dict] = []
        self.corrupt_rows: list[dict] = []
        self.summary = SimSummary(
            out=store.root, start=cfg.start, hours=cfg.hours, users=cfg.users, seed=cfg.seed,
            events={d: dict.fromkeys(S.EVENT_TYPES[d], 0) for d in S.DOMAINS},
            lines=dict.fromkeys(S.DOMAINS, 0), duplicates=dict.fromkeys(S.DOMAINS, 0),
            late=dict.fromkeys(S.DOMAINS, 0), bad_lines=dict.fromkeys(S.DOMAINS, 0),
            authors=w.n_authors, videos=w.n_videos,
        )  # fmt: skip

    def write(self, rel: str, data: bytes) -> None:
        self.summary.bytes_written += self.store.write_bytes(rel, data)

    def publish(self, rel_dir: str, files: dict[str, bytes], manifest: dict) -> None:
        self.summary.bytes_written += self.store.publish(rel_dir, files, manifest)

    # ---- one hour ----------------------------------------------------------------------------
    def hour(self, i: int) -> None:
        cfg, w = self.cfg, self.world
        hour_ms = self.start_ms + i * HOUR_MS
        w.follows.advance(hour_ms)
        self.pool.schedule_hour(i, hour_ms)
        act = simulate_hour(cfg, w, self.pool, i, hour_ms)
        w.follows.add(*act.new_follows)
        for di, (domain, ev) in enumerate(((S.LIVE, act.live), (S.SHORT_VIDEO, act.short_video))):
            dups = deliver(cfg, ev, di, i)
            arrived = ev.rtime < self.end_ms
            self.summary.late[domain] += int(np.sum(arrived & (ev.rtime - ev.etime > HOUR_MS)))
            for j, part in split_by_report_hour(ev, self.start_ms, cfg.hours):
                self.pending[(domain, j)].append(part)
            for j, part in split_by_report_hour(dups, self.start_ms, cfg.hours):
                self.pending[(domain, j)].append(part)
            self._record_dups(domain, ev, dups)
        hour = landing_dir(hour_ms)
        self.summary.live_exposures += act.exposures.num_rows
        self.publish(
            f"oracle/live_exposures/{hour}",
            {"part-00000.parquet": parquet_bytes(act.exposures)},
            {"hour": hour},
        )
        for domain in S.DOMAINS:
            self._flush(domain, i, hour_ms)
        segments, oracle = content_hour(cfg, w, self.pool, i, hour_ms)
        self.summary.segments += segments.num_rows
        self.publish(
            f"landing/content/{hour}",
            {"segments.parquet": parquet_bytes(segments)},
            {"rows": segments.num_rows},
        )
        self.publish(
            f"oracle/segments/{hour}", {"part-00000.parquet": parquet_bytes(oracle)}, {"hour": hour}
        )
        self.pool.prune(hour_ms + HOUR_MS)

    def _record_dups(self, domain: str, ev: Events, dups: Events) -> None:
        # deliver() copies rows in order, so each duplicate's original is found by key
        keep = dups.rtime < self.end_ms
        if not keep.any():
            return
        d = dups.take(np.flatnonzero(keep))
        by_key = np.argsort(ev.key)
        original = ev.rtime[by_key[np.searchsorted(ev.key, d.key, sorter=by_key)]]
        self.summary.duplicates[domain] += len(d)
        self.dup_rows.append(
            pa.table(
                {
                    "domain": pa.array([domain] * len(d), pa.string()),
                    "event_id": event_ids(_PREFIX[domain], d.key),
                    "original_report_time_ms": original,
                    "duplicate_report_time_ms": d.rtime,
                    "original_hour": pa.array([landing_dir(_floor(t)) for t in original]),
                    "duplicate_hour": pa.array([landing_dir(_floor(t)) for t in d.rtime]),
                }
            )
        )

    def _flush(self, domain: str, i: int, hour_ms: int) -> None:
        """Write landing/<domain>/<hour>: sorted events, bad lines mixed in, gzip parts."""
        cfg = self.cfg
        ev = Events.concat(self.pending.pop((domain, i), []))
        ev = ev.take(np.lexsort((ev.key, ev.rtime)))  # report time, then event_id
        counts = np.bincount(ev.etype, minlength=len(S.EVENT_TYPES[domain]))
        for name, c in zip(S.EVENT_TYPES[domain], counts, strict=True):
            self.summary.events[domain][name] += int(c)
        if domain == S.LIVE:
            items, authors = self.pool.room_id, self.pool.author + 1
        else:
            items, authors = np.arange(1, self.world.n_videos + 1), self.world.video_author + 1
        bad, before = self.bad[domain].make(len(ev), i, hour_ms, items, authors)
        # final line index of each bad line: the real lines before it plus earlier bad ones
        bad_pos = before + np.arange(len(bad))
        n_lines = len(ev) + len(bad)
        is_bad = np.zeros(n_lines, bool)
        is_bad[bad_pos] = True
        good_pos = np.flatnonzero(~is_bad)
        hour = landing_dir(hour_ms)
        rel_dir = f"landing/{domain}/{hour}"
        corrupt = (domain, i) in self.corrupt
        files, lines = {}, {}
        per_file = cfg.max_lines_per_file
        for p in range(max(1, -(-n_lines // per_file))):
            lo, hi = p * per_file, min(n_lines, (p + 1) * per_file)
            name = f"part-{p:05d}.jsonl.gz"
            path = posixpath.join(rel_dir, name)
            g0, g1 = np.searchsorted(good_pos, [lo, hi])
            b0, b1 = np.searchsorted(bad_pos, [lo, hi])
            text = format_lines(ev.take(slice(g0, g1)), _PREFIX[domain], S.EVENT_TYPES[domain])
            if b1 > b0:
                text = _merge(text, bad[b0:b1], bad_pos[b0:b1] - lo, hi - lo)
            for k in range(b0, b1):
                line = int(bad_pos[k] - lo + 1)
                self.bad_rows.append(_bad_row(domain, hour, path, bad[k], line, corrupt and p == 0))
            files[name] = gzip_bytes(line_buffer(text), self.executor)
            lines[name] = hi - lo
        if corrupt:  # the first part, cut in the middle of its deflate stream
            name = "part-00000.jsonl.gz"
            full = files[name]
            files[name] = full[: max(10, len(full) // 2)]
            self.corrupt_rows.append(
                {"domain": domain, "hour": hour, "file": posixpath.join(rel_dir, name),
                 "original_bytes": len(full), "written_bytes": len(files[name]),
                 "lines": lines[name]}
            )  # fmt: skip
        self.summary.lines[domain] += n_lines
        self.summary.bad_lines[domain] += len(bad)
        self.publish(rel_dir, files, {"domain": domain, "hour": hour, "lines": lines})

    # ---- after the last hour -------------------------------------------------------------------
    def finish(self) -> None:
        cfg, w = self.cfg, self.world
        authors = pa.table(
            {
                "author_id": np.arange(1, w.n_authors + 1),
                "author_type": np.asarray(S.AUTHOR_TYPES)[w.author_type],
                "primary_category": w.author_primary,
                "secondary_category": w.author_secondary,
                "quality": w.author_quality,
                "hosts_live": np.isin(np.arange(w.n_authors), w.hosts),
            },
            schema=S.AUTHORS_SCHEMA,
        )
        videos = pa.table(
            {
                "item_id": np.arange(1, w.n_videos + 1),
                "author_id": w.video_author + 1,
                "category": w.video_cat,
                "duration_ms": w.video_duration,
                "publish_time_ms": w.video_publish,
                "embedding": _fixed(w.video_emb),
            },
            schema=S.SHORT_VIDEOS_SCHEMA,
        )
        rooms = self.pool.catalog_table()
        self.summary.rooms = rooms.num_rows
        tables = {"authors": authors, "short_videos": videos, "rooms": rooms}
        self.publish(
            "landing/catalog",
            {f"{k}.parquet": parquet_bytes(t) for k, t in tables.items()},
            # the export is as of the end of the last simulated hour (exclusive)
            {"rows": {k: t.num_rows for k, t in tables.items()}, "as_of_ms": self.end_ms},
        )
        users = pa.table(
            {
                "user_id": np.arange(1, w.n_users + 1),
                "interest": _fixed(w.theta),
                "live_propensity": w.live_share.astype(np.float32),
                "low_live_cohort": w.low_live,
                "gift_propensity": w.gift_prop.astype(np.float32),
                "session_rate": w.session_rate.astype(np.float32),
                "click_bias": w.user_bias.astype(np.float32),
                "engagement": w.engagement.astype(np.float32),
            }
        )
        self.write("oracle/users.parquet", parquet_bytes(users))
        self.write("oracle/rooms.parquet", parquet_bytes(self.pool.oracle_table()))
        self.write("oracle/bad_records.parquet", parquet_bytes(_bad_table(self.bad_rows)))
        self.write("oracle/duplicates.parquet", parquet_bytes(_dup_table(self.dup_rows)))
        self.write("oracle/corrupt_files.parquet", parquet_bytes(_corrupt_table(self.corrupt_rows)))
        self.write("oracle/sim_config.json", cfg.to_json().encode())
        self.summary.corrupt_files = len(self.corrupt_rows)


def _corrupt_choice(cfg: SimConfig) -> set[tuple[str, int]]:
    """The (domain, hour index) files to truncate: the N smallest of a seeded draw."""
    if not cfg.corrupt_files:
        return set()
    keys = [(d, i) for i in range(cfg.hours) for d in S.DOMAINS]
    draw = [rng(cfg.seed, CORRUPT, S.DOMAINS.index(d), i).random() for d, i in keys]
    return {keys[k] for k in np.argsort(draw, kind="stable")[: cfg.corrupt_files]}


def _merge(text: pa.Array, bad: list[BadLine], pos: np.ndarray, n: int) -> pa.Array:
    """Interleave bad lines (at final positions ``pos``) with the real lines, in order."""
    both = pa.concat_arrays([text, pa.array([b.text + "\n" for b in bad], pa.string())])
    source = np.empty(n, np.int64)
    is_bad = np.zeros(n, bool)
    is_bad[pos] = True
    source[~is_bad] = np.arange(len(text))
    source[pos] = len(text) + np.arange(len(bad))
    return both.take(pa.array(source))


def _bad_row(domain: str, hour: str, path: str, b: BadLine, line: int, corrupt: bool) -> dict:
    return {"domain": domain, "hour": hour, "file": path, "line_number": line, "reason": b.reason,
            "detail": b.detail, "event_id": b.event_id, "in_corrupt_file": corrupt}  # fmt: skip


_BAD_SCHEMA = pa.schema(
    [("domain", pa.string()), ("hour", pa.string()), ("file", pa.string()),
     ("line_number", pa.int64()), ("reason", pa.string()), ("detail", pa.string()),
     ("event_id", pa.string()), ("in_corrupt_file", pa.bool_())]
)  # fmt: skip
_DUP_SCHEMA = pa.schema(
    [("domain", pa.string()), ("event_id", pa.string()), ("original_report_time_ms", pa.int64()),
     ("duplicate_report_time_ms", pa.int64()), ("original_hour", pa.string()),
     ("duplicate_hour", pa.string())]
)  # fmt: skip
_CORRUPT_SCHEMA = pa.schema(
    [("domain", pa.string()), ("hour", pa.string()), ("file", pa.string()),
     ("original_bytes", pa.int64()), ("written_bytes", pa.int64()), ("lines", pa.int64())]
)  # fmt: skip


def _bad_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=_BAD_SCHEMA)


def _dup_table(parts: list[pa.Table]) -> pa.Table:
    if not parts:
        return _DUP_SCHEMA.empty_table()
    t = pa.concat_tables([p.cast(_DUP_SCHEMA) for p in parts])
    return t.sort_by(
        [
            ("domain", "ascending"),
            ("duplicate_report_time_ms", "ascending"),
            ("event_id", "ascending"),
        ]
    )


def _corrupt_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(
        sorted(rows, key=lambda r: (r["hour"], r["domain"])), schema=_CORRUPT_SCHEMA
    )


def _fixed(x: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).ravel()), x.shape[1])


def _floor(t: int) -> int:
    return int(t) - int(t) % HOUR_MS
