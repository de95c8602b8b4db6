"""Short-video exposures: which video, whether it is played, for how long, and reactions.

A play is logged when it ends (its event time is the end of the play, with watch_ms and
duration_ms); likes, comments, follows and shares happen during the play. Everything
rises with the interest match <theta_u, category>, the same interests that drive live.
"""

from __future__ import annotations

import numpy as np

from ml import schema as S
from ml.sim.config import SimConfig
from ml.sim.events import SV_T, EventBuilder, during, pages, sigmoid
from ml.sim.world import World, sample_categories

# P(page) over schema.PAGES (feed, follow, explore, live_square, search), for authors the
# user does not follow / follows.
_PAGES = np.array([[0.80, 0.0, 0.15, 0.0, 0.05], [0.60, 0.30, 0.08, 0.0, 0.02]])
assert _PAGES.shape[1] == len(S.PAGES)


def plan_short_video(
    cfg: SimConfig, world: World, g: np.random.Generator, u: np.ndarray, t0: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-exposure outcomes (one row per exposure)."""
    n = len(u)
    cats = sample_categories(g, world.theta_cum, u, cfg.explore)
    v = world.video_index.sample(cats, g.random(n))
    match = world.theta[u, world.video_cat[v]].astype(np.float64)
    author = world.video_author[v]
    follows = world.follows.contains(u, author)
    dur = world.video_duration[v]
    play = g.random(n) < sigmoid(cfg.play_logit + match)
    play_start = t0 + g.integers(200, 1500, n)
    noise = cfg.watch_ratio_sigma * g.standard_normal(n)
    ratio = np.exp(np.log(cfg.watch_ratio_median) + 1.2 * match + noise)
    watch = np.clip(np.round(dur * ratio), 300, 5 * dur).astype(np.int64)
    eng = np.log(world.engagement[u])
    fit = 3.0 * match + 0.8 * np.minimum(ratio, 2.0)
    return {
        "u": u,
        "t0": t0,
        "v": v,
        "author": author,
        "follows": follows,
        "page": pages(g, follows, _PAGES),
        "dur": dur,
        "play": play,
        "play_start": play_start,
        "watch": watch,
        "like": play & (g.random(n) < sigmoid(cfg.sv_like_logit + fit + eng)),
        "comment": play & (g.random(n) < sigmoid(cfg.sv_comment_logit + fit + eng)),
        "follow": play & ~follows & (g.random(n) < sigmoid(cfg.sv_follow_logit + fit)),
        "share": play & (g.random(n) < sigmoid(cfg.sv_share_logit + fit)),
    }


def short_video_events(g: np.random.Generator, p: dict[str, np.ndarray]):
    """(events, new follows as (user idx, author idx, time)) of the planned exposures."""
    n = len(p["u"])
    b = EventBuilder(p["u"] + 1, p["v"] + 1, p["author"] + 1, p["page"], duration=p["dur"])
    b.add(SV_T["impression"], np.arange(n), p["t0"])
    played = np.flatnonzero(p["play"])
    end = p["play_start"][played] + p["watch"][played]
    b.add(SV_T["play"], played, end, watch=p["watch"][played])
    times = {}
    for name in ("like", "comment", "follow", "share"):
        rows = np.flatnonzero(p[name])
        times[name] = during(g, p["play_start"], p["watch"], rows)
        b.add(SV_T[name], rows, times[name])
    f = np.flatnonzero(p["follow"])
    return b.build(), (p["u"][f], p["author"][f], times["follow"])
