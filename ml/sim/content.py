"""Per-segment content features (landing/content) and the oracle's true segment CTR.

The features stand in for a multimodal encoder: each is a unit vector mixing the room's
category centroid, a per-room style, noise, and the highlight intensity along a fixed
direction. Visual frames follow h_t of their own segment; ASR and comment text follow
h at a per-room lag of 0–2 segments, misaligned on purpose (what ContentCTR's DTW
alignment loss is for).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ml import schema as S
from ml.hours import HOUR_MS
from ml.sim.config import CONTENT, SimConfig, rng
from ml.sim.rooms import SEG, RoomPool
from ml.sim.world import World, normalize

_CTR_CHUNK = 8192


def enter_logit_base(
    cfg: SimConfig,
    world: World,
    users: np.ndarray,
    cats: np.ndarray,
    quality: np.ndarray,
    follows: np.ndarray,
) -> np.ndarray:
    """The part of P(enter)'s logit fixed for a (user, room) pair; add b_highlight*h + noise."""
    return (
        cfg.b0
        + cfg.b_interest * world.theta[users, cats]
        + cfg.b_quality * quality
        + cfg.b_follow * follows
        + world.user_bias[users]
    )


def hour_segments(pool: RoomPool, hour_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """(room index, segment index) of every segment whose end falls in the hour."""
    # segment k ends at start + (k+1)*SEG; want hour_ms <= end < hour_ms + HOUR_MS
    lo = np.maximum(-((pool.start - hour_ms) // SEG) - 1, 0)
    hi = np.minimum(-((pool.start - hour_ms - HOUR_MS) // SEG) - 1, pool.nseg)
    count = np.maximum(hi - lo, 0)
    rooms = np.repeat(np.arange(len(pool)), count)
    first = np.cumsum(count) - count
    seg = np.repeat(lo, count) + np.arange(len(rooms)) - np.repeat(first, count)
    return rooms, seg


def content_hour(
    cfg: SimConfig, world: World, pool: RoomPool, hour_index: int, hour_ms: int
) -> tuple[pa.Table, pa.Table]:
    """(landing segments table, oracle segments table) for one hour."""
    rooms, seg = hour_segments(pool, hour_ms)
    order = np.lexsort((seg, pool.room_id[rooms]))
    rooms, seg = rooms[order], seg[order]
    n, d = len(rooms), S.EMBED_DIM
    g = rng(cfg.seed, CONTENT, hour_index)
    h = pool.highlight(rooms, seg)
    h_text = pool.highlight(rooms, np.maximum(seg - pool.lag[rooms], 0))
    centroid = world.centroids[pool.cat[rooms]]
    style = pool.style[rooms]
    direction = world.visual_dir[world.author_type[pool.author[rooms]]]

    frames = []
    for _ in range(S.FRAMES_PER_SEGMENT):
        hf = np.clip(h + 0.05 * g.standard_normal(n), 0.0, 1.0)[:, None]
        frames.append(
            normalize(
                centroid + 1.2 * hf * direction + 0.3 * style + 0.15 * g.standard_normal((n, d))
            )
        )
    visual = np.concatenate(frames, axis=1) if n else np.zeros((0, 3 * d), np.float32)
    ht = h_text[:, None]
    asr = normalize(
        0.8 * centroid + 1.0 * ht * world.asr_dir + 0.3 * style + 0.2 * g.standard_normal((n, d))
    )
    comment = normalize(
        0.5 * centroid + 1.2 * ht * world.comment_dir + 0.25 * g.standard_normal((n, d))
    )

    start = pool.start[rooms] + seg * SEG
    seg_table = pa.table(
        {
            "room_id": pool.room_id[rooms],
            "author_id": pool.author[rooms] + 1,
            "segment_index": seg.astype(np.int32),
            "segment_start_ms": start,
            "segment_end_ms": start + SEG,
            "visual": _fixed_list(visual),
            "asr": _fixed_list(asr),
            "comment": _fixed_list(comment),
        },
        schema=S.SEGMENTS_SCHEMA,
    )
    oracle = pa.table(
        {
            "room_id": pool.room_id[rooms],
            "author_id": pool.author[rooms] + 1,
            "segment_index": seg.astype(np.int32),
            "segment_start_ms": start,
            "segment_end_ms": start + SEG,
            "highlight": h.astype(np.float32),
            "text_highlight": h_text.astype(np.float32),
            "true_ctr": true_ctr(cfg, world, pool, rooms, h).astype(np.float32),
        }
    )
    return seg_table, oracle


def true_ctr(
    cfg: SimConfig, world: World, pool: RoomPool, rooms: np.ndarray, h: np.ndarray
) -> np.ndarray:
    """Population P(enter) of each segment.

    The population is the simulator's reference users, each weighted by how likely the
    recommender shows them this room (live share x exp(sharpness x interest match)); the
    per-exposure noise is integrated out with the probit approximation of E[sigmoid].
    """
    if len(rooms) == 0:
        return np.zeros(0)
    uniq, inv = np.unique(rooms, return_inverse=True)
    ref = world.ref_users
    users = np.repeat(ref[:, None], len(uniq), axis=1)
    cats = np.repeat(pool.cat[uniq][None, :], len(ref), axis=0)
    authors = np.repeat(pool.author[uniq][None, :], len(ref), axis=0)
    follows = world.follows.contains(users.ravel(), authors.ravel()).reshape(users.shape)
    base = enter_logit_base(cfg, world, users, cats, pool.quality[uniq][None, :], follows)
    weight = world.live_share[ref][:, None] * np.exp(cfg.rec_sharpness * world.theta[users, cats])
    weight /= weight.sum(axis=0, keepdims=True)
    scale = 1.0 / np.sqrt(1.0 + np.pi * cfg.enter_noise_sd**2 / 8.0)
    out = np.empty(len(rooms))
    for s in range(0, len(rooms), _CTR_CHUNK):
        ri = inv[s : s + _CTR_CHUNK]
        logit = base[:, ri] + cfg.b_highlight * h[s : s + _CTR_CHUNK][None, :]
        out[s : s + _CTR_CHUNK] = (weight[:, ri] / (1.0 + np.exp(-scale * logit))).sum(axis=0)
    return out


def _fixed_list(x: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).ravel()), x.shape[1])
