"""Live exposures: the recommender's room choice, P(enter), the watch and what happens in it.

P(enter) = sigmoid(b0 + b_interest*<theta_u, cat(r)> + b_highlight*h_t + b_quality*q
+ b_follow*follows(u, author) + user effect + noise), h_t the room's highlight intensity
in the 30 s segment of the impression. After entering, likes, comments and gifts arrive
as Poisson processes over the watch, so long watches produce positives long after the
impression (gifts often > 5 min later, some > 1 h).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ml import schema as S
from ml.hours import HOUR_MS
from ml.sim.config import SimConfig
from ml.sim.content import enter_logit_base
from ml.sim.events import LIVE_T, EventBuilder, during, pages, sigmoid
from ml.sim.rooms import SEG, RoomPool
from ml.sim.world import World

# P(page) over schema.PAGES (feed, follow, explore, live_square, search), for authors the
# user does not follow / follows.
_PAGES = np.array([[0.45, 0.0, 0.15, 0.35, 0.05], [0.20, 0.50, 0.03, 0.25, 0.02]])
assert _PAGES.shape[1] == len(S.PAGES)


def choose_rooms(cfg, world: World, pool: RoomPool, g, u, t0, hour_ms: int) -> np.ndarray:
    """The recommender: per 30 s slot, one of the rooms live through the slot, with weight
    popularity x exp(sharpness x interest match), mixed with uniform exploration.
    -1 where no room is live. ``t0`` must be sorted."""
    room = np.full(len(u), -1, np.int64)
    pick = g.random(len(u))
    slot = (t0 - hour_ms) // SEG
    n_slots = HOUR_MS // SEG
    bounds = np.searchsorted(slot, np.arange(n_slots + 1))
    for s in range(n_slots):
        a, b = bounds[s], bounds[s + 1]
        if b == a:
            continue
        act = pool.active(hour_ms + s * SEG, hour_ms + (s + 1) * SEG)
        if len(act) == 0:
            continue
        match = world.theta[u[a:b, None], pool.cat[act][None, :]]
        w = pool.pop[act][None, :] * np.exp(cfg.rec_sharpness * match)
        w = (1 - cfg.explore) * w / w.sum(axis=1, keepdims=True) + cfg.explore / len(act)
        cum = np.cumsum(w, axis=1)
        idx = (cum < pick[a:b, None] * cum[:, -1:]).sum(axis=1)
        room[a:b] = act[np.minimum(idx, len(act) - 1)]
    return room


def plan_live(
    cfg: SimConfig, world: World, pool: RoomPool, g, u: np.ndarray, t0: np.ndarray, hour_ms: int
) -> dict[str, np.ndarray]:
    """Per-exposure outcomes; exposures in a slot without any live room are dropped."""
    order = np.argsort(t0, kind="stable")
    u, t0 = u[order], t0[order]
    room = choose_rooms(cfg, world, pool, g, u, t0, hour_ms)
    keep = room >= 0
    u, t0, r = u[keep], t0[keep], room[keep]
    n = len(u)
    seg = (t0 - pool.start[r]) // SEG
    h = pool.highlight(r, seg).astype(np.float64)
    author, cat, quality = pool.author[r], pool.cat[r], pool.quality[r].astype(np.float64)
    match = world.theta[u, cat].astype(np.float64)
    follows = world.follows.contains(u, author)
    logit = enter_logit_base(cfg, world, u, cat, quality, follows) + cfg.b_highlight * h
    p_enter = sigmoid(logit + cfg.enter_noise_sd * g.standard_normal(n))
    t_in = t0 + np.clip(g.lognormal(np.log(1500), 0.5, n), 300, 10_000).astype(np.int64)
    end = pool.end[r]
    entered = (g.random(n) < p_enter) & (t_in + 1000 < end)
    mu = np.log(cfg.watch_median_s * 1000) + match + 0.8 * h + 0.5 * (quality - 0.5)
    raw = np.exp(mu + cfg.watch_sigma * g.standard_normal(n))
    # heavy tail: stayers watch 60–100% of what is left of the stream
    p_stay = np.where(follows, cfg.stay_prob_follower, cfg.stay_prob)
    p_stay = p_stay + cfg.stay_prob_gifter * np.minimum(world.gift_prop[u], 1.0)
    stays = g.random(n) < p_stay
    raw = np.where(stays, np.maximum(raw, (end - t_in) * g.uniform(0.6, 1.0, n)), raw)
    watch = np.where(entered, np.minimum(np.maximum(raw, 1000), end - t_in), 0).astype(np.int64)
    return {
        "u": u,
        "t0": t0,
        "r": r,
        "seg": seg,
        "h": h,
        "author": author,
        "quality": quality,
        "match": match,
        "follows": follows,
        "page": pages(g, follows, _PAGES),
        "p_enter": p_enter,
        "entered": entered,
        "t_in": t_in,
        "watch": watch,
    }


def live_events(cfg: SimConfig, world: World, pool: RoomPool, g, p: dict[str, np.ndarray]):
    """(events, oracle exposures table, new follows) of the planned exposures.

    The impressions are the first rows of the events, in exposure order.
    """
    u, entered, watch, match, h, quality = (
        p[k] for k in ("u", "entered", "watch", "match", "h", "quality")
    )
    n = len(u)
    wmin = watch / 60_000
    intensity = world.engagement[u] * wmin * (0.5 + match + h)
    n_like = np.where(entered, np.minimum(g.poisson(cfg.like_per_min * intensity), 60), 0)
    n_comment = np.where(entered, np.minimum(g.poisson(cfg.comment_per_min * intensity), 30), 0)
    gift_rate = cfg.gift_per_min * world.gift_prop[u] * wmin * (0.5 + quality)
    n_gift = np.where(entered, np.minimum(g.poisson(gift_rate), 20), 0)
    p_follow = 1 - np.exp(-cfg.follow_per_min * wmin * (1 + 2 * match))
    follow = entered & ~p["follows"] & (g.random(n) < p_follow)
    share = entered & (g.random(n) < 0.002 + 1 - np.exp(-cfg.share_per_min * wmin))

    t_in = p["t_in"]
    b = EventBuilder(u + 1, pool.room_id[p["r"]], p["author"] + 1, p["page"])
    b.add(LIVE_T["impression"], np.arange(n), p["t0"])
    e = np.flatnonzero(entered)
    b.add(LIVE_T["enter"], e, t_in[e])
    b.add(LIVE_T["exit"], e, t_in[e] + watch[e], watch=watch[e])
    for name, counts in (("like", n_like), ("comment", n_comment)):
        rows = np.repeat(np.arange(n), counts)
        b.add(LIVE_T[name], rows, during(g, t_in, watch, rows))
    f = np.flatnonzero(follow)
    follow_t = during(g, t_in, watch, f)
    b.add(LIVE_T["follow"], f, follow_t)
    rows = np.repeat(np.arange(n), n_gift)
    value = g.lognormal(np.log(cfg.gift_value_median), cfg.gift_value_sigma, len(rows))
    value = np.clip(np.round(value, 1), 0.1, 1e5)
    b.add(LIVE_T["gift"], rows, during(g, t_in, watch, rows), gift=value)
    s = np.flatnonzero(share)
    b.add(LIVE_T["share"], s, during(g, t_in, watch, s))

    exposures = pa.table(
        {
            "user_id": u + 1,
            "item_id": pool.room_id[p["r"]],
            "author_id": p["author"] + 1,
            "event_time_ms": p["t0"],
            "page": pa.array(np.asarray(S.PAGES)[p["page"]]),
            "segment_index": p["seg"].astype(np.int32),
            "highlight": h.astype(np.float32),
            "interest_match": match.astype(np.float32),
            "follows": p["follows"],
            "quality": quality.astype(np.float32),
            "p_enter": p["p_enter"].astype(np.float32),
            "entered": entered,
            "watch_ms": pa.array(watch, mask=~entered),
            "n_likes": n_like.astype(np.int32),
            "n_comments": n_comment.astype(np.int32),
            "n_gifts": n_gift.astype(np.int32),
            "followed": follow,
            "shared": share,
        }
    )
    return b.build(), exposures, (u[f], p["author"][f], follow_t)
