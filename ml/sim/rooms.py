"""Live rooms: when hosts go live, for how long, and each room's highlight timeline.

A room's timeline is one latent intensity h_t in [0, 1] per 30 s segment, shaped by the
author type — talent: rare bursts of a few segments; game: ramps within rounds; chat: a
slow mean-reverting random walk. Everything downstream (P(enter), content features,
the oracle's segment CTR) reads h_t, so that is where ContentCTR's signal comes from.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ml import schema as S
from ml.hours import HOUR_MS
from ml.sim.config import PRE_HOURS, ROOMS, SimConfig, rng
from ml.sim.world import GAME, ROOM_ID_BASE, TALENT, World, normalize

SEG = S.SEGMENT_MS


def highlight_timelines(
    g: np.random.Generator, types: np.ndarray, nseg: np.ndarray, cfg: SimConfig
) -> np.ndarray:
    """Concatenated per-room timelines (room by room, nseg[i] values each), float32.

    All random numbers are drawn up front as (rooms x segments) matrices; only the
    recursions (burst decay, round phase, random walk) step through time, vectorised
    over rooms.
    """
    n = len(types)
    if n == 0:
        return np.zeros(0, np.float32)
    length = int(nseg.max())
    noise = g.standard_normal((n, length))
    burst = g.random((n, length)) < cfg.talent_burst_prob
    amp = g.uniform(0.6, 1.0, (n, length))
    lo, hi = cfg.game_round_segments
    round_len = g.integers(lo, hi + 1, (n, length))
    peak = g.uniform(0.55, 1.0, (n, length))
    walk = g.normal(0.0, cfg.chat_walk_sd, (n, length))
    x_talent = np.zeros(n)
    x_chat = g.uniform(0.15, 0.5, n)
    phase = np.zeros(n)
    cur_len, cur_peak = round_len[:, 0].astype(float), peak[:, 0]
    out = np.empty((n, length), np.float32)
    is_talent, is_game = types == TALENT, types == GAME
    for t in range(length):
        # talent: a burst jumps to its amplitude and decays over ~3 segments
        x_talent = np.where(burst[:, t], np.maximum(0.6 * x_talent, amp[:, t]), 0.6 * x_talent)
        talent = 0.06 + 0.92 * x_talent + 0.02 * noise[:, t]
        # game: intensity climbs (quadratically) to the round's peak, then a new round
        reset = phase >= cur_len
        cur_len = np.where(reset, round_len[:, t], cur_len)
        cur_peak = np.where(reset, peak[:, t], cur_peak)
        phase = np.where(reset, 0.0, phase)
        game = 0.1 + (cur_peak - 0.1) * (phase / cur_len) ** 2 + 0.04 * noise[:, t]
        phase += 1.0
        # chat: mean-reverting walk around 0.35
        x_chat = np.clip(x_chat + 0.05 * (0.35 - x_chat) + walk[:, t], 0.05, 0.85)
        out[:, t] = np.where(is_talent, talent, np.where(is_game, game, x_chat))
    np.clip(out, 0.0, 1.0, out=out)
    return out[np.arange(length)[None, :] < nseg[:, None]]


class RoomPool:
    """Rooms that may still matter (working set) plus everything the catalog must list.

    Hosts go live only when idle, so one host never runs two rooms at once; that state
    carries from hour to hour, which keeps hour i identical whatever the run's length.
    """

    _COLS = ("room_id", "author", "cat", "start", "end", "nseg", "lag", "pop", "quality", "h_off")

    def __init__(self, world: World, cfg: SimConfig):
        self.world, self.cfg = world, cfg
        self.busy_until = np.full(world.n_authors, np.iinfo(np.int64).min, np.int64)
        self.next_id = ROOM_ID_BASE
        self.room_id = np.zeros(0, np.int64)
        self.author = np.zeros(0, np.int64)
        self.cat = np.zeros(0, np.int32)
        self.start = np.zeros(0, np.int64)
        self.end = np.zeros(0, np.int64)
        self.nseg = np.zeros(0, np.int64)
        self.lag = np.zeros(0, np.int64)
        self.pop = np.zeros(0)
        self.quality = np.zeros(0, np.float32)
        self.h_off = np.zeros(0, np.int64)
        self.style = np.zeros((0, S.EMBED_DIM), np.float32)
        self.h = np.zeros(0, np.float32)
        self._catalog: list[dict[str, np.ndarray]] = []
        self._oracle: list[dict[str, np.ndarray]] = []

    def __len__(self) -> int:
        return len(self.room_id)

    def schedule_hour(self, hour_index: int, hour_ms: int) -> int:
        """Start the rooms of one hour; returns how many started."""
        w, cfg = self.world, self.cfg
        g = rng(cfg.seed, ROOMS, hour_index + PRE_HOURS)
        hosts = w.hosts
        n = len(hosts)
        # Draw for every host, idle or not, so the stream does not depend on the state.
        go_draw = g.random(n)
        start_s = g.integers(0, HOUR_MS // 1000, n)
        med = np.log(cfg.room_median_min * 60_000)
        dur = np.clip(
            g.lognormal(med, cfg.room_sigma, n),
            cfg.room_min_min * 60_000,
            cfg.max_room_hours * HOUR_MS,
        )
        use_second = g.random(n) < 0.25
        lag = g.integers(0, 3, n)
        pop_noise = g.lognormal(0.0, 0.3, n)
        emb_noise = g.standard_normal((n, S.EMBED_DIM)) * (
            cfg.embedding_noise / np.sqrt(S.EMBED_DIM)
        )
        style = normalize(g.standard_normal((n, S.EMBED_DIM)))

        idle = self.busy_until[hosts] <= hour_ms
        go = idle & (go_draw < np.clip(cfg.room_start_rate * w.host_activity[hosts], 0.0, 1.0))
        sel = np.flatnonzero(go)
        sel = sel[np.lexsort((hosts[sel], start_s[sel]))]  # ids in start order
        a = hosts[sel]
        start = hour_ms + start_s[sel] * 1000
        nseg = np.ceil(dur[sel] / SEG).astype(np.int64)
        end = start + nseg * SEG
        self.busy_until[a] = end
        second = w.author_secondary[a]
        cat = np.where(use_second[sel] & (second >= 0), second, w.author_primary[a]).astype(
            np.int32
        )
        ids = self.next_id + np.arange(len(sel), dtype=np.int64)
        self.next_id += len(sel)
        types = w.author_type[a]
        h = highlight_timelines(rng(cfg.seed, ROOMS, hour_index + PRE_HOURS, 1), types, nseg, cfg)
        emb = normalize(w.centroids[cat] + 0.3 * w.author_style[a] + emb_noise[sel])
        pop = w.author_popularity[a] * pop_noise[sel]

        self.h_off = np.concatenate((self.h_off, len(self.h) + np.cumsum(nseg) - nseg))
        self.h = np.concatenate((self.h, h))
        self.room_id = np.concatenate((self.room_id, ids))
        self.author = np.concatenate((self.author, a))
        self.cat = np.concatenate((self.cat, cat))
        self.start = np.concatenate((self.start, start))
        self.end = np.concatenate((self.end, end))
        self.nseg = np.concatenate((self.nseg, nseg))
        self.lag = np.concatenate((self.lag, lag[sel]))
        self.pop = np.concatenate((self.pop, pop))
        self.quality = np.concatenate((self.quality, w.author_quality[a]))
        self.style = np.concatenate((self.style, style[sel]))

        self._catalog.append(
            {
                "item_id": ids,
                "author_id": a + 1,
                "category": cat,
                "start_ms": start,
                "end_ms": end,
                "embedding": emb,
            }
        )
        per_room_mean = np.add.reduceat(h, np.cumsum(nseg) - nseg) / nseg if len(nseg) else h
        self._oracle.append(
            {
                "room_id": ids,
                "author_id": a + 1,
                "author_type": np.asarray(S.AUTHOR_TYPES)[types],
                "category": cat,
                "start_ms": start,
                "end_ms": end,
                "n_segments": nseg.astype(np.int32),
                "quality": w.author_quality[a],
                "popularity": pop,
                "text_lag_segments": lag[sel].astype(np.int32),
                "mean_highlight": per_room_mean.astype(np.float32),
            }
        )
        return len(sel)

    def prune(self, before_ms: int) -> None:
        """Forget rooms that ended by ``before_ms`` (they cannot appear in later hours)."""
        keep = np.flatnonzero(self.end > before_ms)
        if len(keep) == len(self.room_id):
            return
        spans = [
            np.arange(o, o + k) for o, k in zip(self.h_off[keep], self.nseg[keep], strict=True)
        ]
        self.h = self.h[np.concatenate(spans)] if spans else np.zeros(0, np.float32)
        for name in self._COLS[:-1]:
            setattr(self, name, getattr(self, name)[keep])
        self.style = self.style[keep]
        self.h_off = np.cumsum(self.nseg) - self.nseg

    def active(self, lo_ms: int, hi_ms: int) -> np.ndarray:
        """Rooms live during the whole of [lo_ms, hi_ms)."""
        return np.flatnonzero((self.start <= lo_ms) & (self.end >= hi_ms))

    def highlight(self, rooms: np.ndarray, segments: np.ndarray) -> np.ndarray:
        return self.h[self.h_off[rooms] + segments]

    def catalog_table(self) -> pa.Table:
        return _concat_table(self._catalog, S.ROOMS_SCHEMA)

    def oracle_table(self) -> pa.Table:
        return _concat_table(self._oracle, None)


def _concat_table(batches: list[dict[str, np.ndarray]], schema: pa.Schema | None) -> pa.Table:
    names = list(batches[0]) if batches else ([f.name for f in schema] if schema else [])
    cols = {}
    for name in names:
        parts = [b[name] for b in batches]
        arr = np.concatenate(parts) if parts else np.zeros(0)
        if arr.ndim == 2:
            cols[name] = pa.FixedSizeListArray.from_arrays(
                pa.array(arr.astype(np.float32).ravel()), arr.shape[1]
            )
        else:
            cols[name] = pa.array(arr)
    if schema is None:
        return pa.table(cols)
    return pa.table(cols).cast(schema) if cols else schema.empty_table()
