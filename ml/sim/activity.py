"""One hour of platform activity: sessions → exposures → outcomes → events.

Exposures come in Poisson sessions; each is live with the user's live share, else a short
video. A user inside a live room is not scrolling a feed, so exposures that fall within
one of their live watches (this hour's or one carried over from an earlier hour) are
dropped — which also keeps a long watch's late gifts attributable to one impression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ml.hours import HOUR_MS
from ml.sim.config import ACTIVITY, SimConfig, rng
from ml.sim.events import KEY_HOUR, Events, event_ids, take
from ml.sim.live import live_events, plan_live
from ml.sim.rooms import RoomPool
from ml.sim.short_video import plan_short_video, short_video_events
from ml.sim.world import World


@dataclass
class HourActivity:
    live: Events
    short_video: Events
    exposures: pa.Table  # oracle: one row per live impression
    new_follows: tuple[np.ndarray, np.ndarray, np.ndarray]  # user idx, author idx, time


def diurnal(cfg: SimConfig, hour_ms: int) -> float:
    """Activity multiplier, peaking at 13:00 UTC (21:00 in UTC+8)."""
    hour_of_day = (hour_ms // HOUR_MS) % 24
    return 1.0 + cfg.diurnal_amplitude * np.cos(2 * np.pi * (hour_of_day + 0.5 - 13) / 24)


def simulate_hour(
    cfg: SimConfig, world: World, pool: RoomPool, hour_index: int, hour_ms: int
) -> HourActivity:
    """All events of the exposures of this hour (including their later events)."""
    g = rng(cfg.seed, ACTIVITY, hour_index)
    users, t0 = exposures(cfg, world, g, hour_ms)
    is_live = g.random(len(users)) < world.live_share[users]
    sv = plan_short_video(cfg, world, g, users[~is_live], t0[~is_live])
    live = plan_live(cfg, world, pool, g, users[is_live], t0[is_live], hour_ms)
    n_sv = len(sv["u"])
    watch_end = np.where(live["entered"], live["t_in"] + live["watch"], -1)
    keep = occupancy(
        world,
        np.concatenate((sv["u"], live["u"])),
        np.concatenate((sv["t0"], live["t0"])),
        np.concatenate((np.full(n_sv, -1, np.int64), watch_end)),
        hour_ms,
    )
    sv_events, sv_follows = short_video_events(g, take(sv, keep[:n_sv]))
    live_ev, table, live_follows = live_events(cfg, world, pool, g, take(live, keep[n_sv:]))
    for ev in (live_ev, sv_events):  # ids follow event time within the hour
        ev.key[np.argsort(ev.etime, kind="stable")] = hour_index * KEY_HOUR + np.arange(len(ev))
    table = table.add_column(0, "event_id", event_ids("L", live_ev.key[: table.num_rows]))
    follows = tuple(np.concatenate(p) for p in zip(live_follows, sv_follows, strict=True))
    return HourActivity(live_ev, sv_events, table, follows)


def exposures(cfg: SimConfig, world: World, g: np.random.Generator, hour_ms: int):
    """(user index, time) of every exposure: Poisson sessions of a few exposures each."""
    n_sess = g.poisson(world.session_rate * diurnal(cfg, hour_ms))
    sess_user = np.repeat(np.arange(world.n_users), n_sess)
    sess_off = g.random(len(sess_user)) * HOUR_MS
    n_exp = 1 + g.poisson(cfg.exposures_per_session - 1, len(sess_user))
    users = np.repeat(sess_user, n_exp)
    csum = np.cumsum(g.exponential(cfg.exposure_gap_s * 1000, len(users)))
    first = np.cumsum(n_exp) - n_exp
    offset = csum - np.repeat(csum[first], n_exp) if len(first) else csum
    # Wrap into the hour rather than truncate, so exposure density is flat across the hour.
    t0 = hour_ms + ((np.repeat(sess_off, n_exp) + offset) % HOUR_MS).astype(np.int64)
    return users, t0


def occupancy(
    world: World, u: np.ndarray, t0: np.ndarray, watch_end: np.ndarray, hour_ms: int
) -> np.ndarray:
    """Which exposures happen: not inside an earlier kept live watch of the same user.

    A sequential rule, made vectorised by stepping through each user's exposures in time
    order (step k handles every user's k-th exposure at once). Only users with a watch in
    play are scanned. Updates ``world.busy_until`` for the next hour.
    """
    busy = world.busy_until
    keep = np.ones(len(u), bool)
    has_watch = np.zeros(world.n_users, bool)
    has_watch[u[watch_end > 0]] = True
    cand = np.flatnonzero(has_watch[u] | (busy[u] > hour_ms))
    if len(cand) == 0:
        return keep
    cand = cand[np.lexsort((t0[cand], u[cand]))]
    us = u[cand]
    starts = np.flatnonzero(np.r_[True, us[1:] != us[:-1]])
    rank = np.arange(len(cand)) - np.repeat(starts, np.diff(np.r_[starts, len(cand)]))
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(rank.max() + 2))
    for k in range(rank.max() + 1):
        idx = cand[by_rank[bounds[k] : bounds[k + 1]]]  # at most one exposure per user
        uu = u[idx]
        ok = t0[idx] >= busy[uu]
        keep[idx] = ok
        grow = ok & (watch_end[idx] > busy[uu])
        busy[uu[grow]] = watch_end[idx[grow]]
    return keep
