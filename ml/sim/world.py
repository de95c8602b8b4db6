"""The static world, drawn from the seed alone: categories, users, authors, videos, follows.

Index conventions: user index u has user_id u + 1, author index a has author_id a + 1,
video index v has item_id v + 1 (room ids start at ROOM_ID_BASE, so they never collide).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.schema import EMBED_DIM
from ml.sim.config import WORLD, SimConfig, rng

ROOM_ID_BASE = 1_000_000_000
DAY_MS = 86_400_000
TALENT, GAME, CHAT = 0, 1, 2  # index into schema.AUTHOR_TYPES
_CHUNK = 1 << 18  # rows per chunk where a (rows x K) temporary would be large


def normalize(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def lognormal_with_mean(g: np.random.Generator, mean: float, sigma: float, n: int) -> np.ndarray:
    return g.lognormal(np.log(mean) - sigma**2 / 2, sigma, n)


class CategoryIndex:
    """Popularity-weighted sampling of an item within a given category, vectorised.

    Items are sorted by category; one global cumulative weight array; an item of category
    c is found by searchsorted inside c's slice. An empty category borrows the nearest
    non-empty one (by centroid), so every draw returns an item.
    """

    def __init__(self, cats: np.ndarray, weights: np.ndarray, centroids: np.ndarray):
        k = len(centroids)
        self.order = np.argsort(cats, kind="stable")
        self.cum = np.cumsum(weights[self.order].astype(np.float64))
        counts = np.bincount(cats, minlength=k)
        self.ends = np.cumsum(counts)
        self.starts = self.ends - counts
        nonempty = np.flatnonzero(counts)
        sim = centroids @ centroids[nonempty].T
        self.remap = np.where(counts > 0, np.arange(k), nonempty[np.argmax(sim, axis=1)])
        cum0 = np.concatenate(([0.0], self.cum))
        self.lo = cum0[self.starts]
        self.hi = cum0[self.ends]

    def sample(self, cats: np.ndarray, u: np.ndarray) -> np.ndarray:
        c = self.remap[cats]
        r = self.lo[c] + u * (self.hi[c] - self.lo[c])
        pos = np.searchsorted(self.cum, r, side="right")
        pos = np.clip(pos, self.starts[c], self.ends[c] - 1)
        return self.order[pos]


def sample_categories(
    g: np.random.Generator, theta_cum: np.ndarray, users: np.ndarray, explore: float
) -> np.ndarray:
    """A category per draw: from the user's interests, or uniform with prob ``explore``."""
    n, k = len(users), theta_cum.shape[1]
    r = g.random(n).astype(np.float32)
    uniform = g.integers(0, k, n)
    explored = g.random(n) < explore
    cats = np.empty(n, np.int64)
    for s in range(0, n, _CHUNK):
        rows = theta_cum[users[s : s + _CHUNK]]
        cats[s : s + _CHUNK] = (rows < r[s : s + _CHUNK, None]).sum(axis=1)
    np.minimum(cats, k - 1, out=cats)
    return np.where(explored, uniform, cats)


class FollowGraph:
    """Who follows whom, as sorted (user, author) keys; follows take effect at their time."""

    def __init__(self, users: np.ndarray, authors: np.ndarray, n_authors: int):
        self.mul = np.int64(n_authors)
        self.keys = np.unique(users.astype(np.int64) * self.mul + authors)
        self._pending_keys = np.zeros(0, np.int64)
        self._pending_t = np.zeros(0, np.int64)

    def contains(self, users: np.ndarray, authors: np.ndarray) -> np.ndarray:
        k = users.astype(np.int64) * self.mul + authors
        pos = np.searchsorted(self.keys, k)
        pos = np.minimum(pos, len(self.keys) - 1)
        return (self.keys[pos] == k) if len(self.keys) else np.zeros(len(k), bool)

    def add(self, users: np.ndarray, authors: np.ndarray, times: np.ndarray) -> None:
        k = users.astype(np.int64) * self.mul + authors
        self._pending_keys = np.concatenate((self._pending_keys, k))
        self._pending_t = np.concatenate((self._pending_t, times.astype(np.int64)))

    def advance(self, t_ms: int) -> None:
        """Apply the follows that happened before ``t_ms``."""
        due = self._pending_t < t_ms
        if due.any():
            self.keys = np.union1d(self.keys, self._pending_keys[due])
            self._pending_keys = self._pending_keys[~due]
            self._pending_t = self._pending_t[~due]

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class World:
    centroids: np.ndarray  # (K, D) unit vectors
    # users
    theta: np.ndarray  # (U, K) interests, rows sum to 1, shared by both domains
    theta_cum: np.ndarray  # (U, K) float32 cumulative, for sampling
    session_rate: np.ndarray  # sessions per hour
    live_share: np.ndarray  # P(an exposure is a live room)
    low_live: np.ndarray  # bool, the low-live-activity cohort
    gift_prop: np.ndarray  # 0 for most users
    user_bias: np.ndarray  # logit offset of P(enter)
    engagement: np.ndarray  # like/comment multiplier, mean 1
    ref_users: np.ndarray  # reference population for the oracle's segment CTR
    # authors
    author_type: np.ndarray  # int8, TALENT / GAME / CHAT
    author_primary: np.ndarray
    author_secondary: np.ndarray  # -1 when none
    author_quality: np.ndarray  # float32 in [0, 1]
    author_popularity: np.ndarray
    author_style: np.ndarray  # (A, D)
    hosts: np.ndarray  # author indices that host lives
    host_activity: np.ndarray  # per author (0 for non-hosts)
    # short videos
    video_author: np.ndarray
    video_cat: np.ndarray
    video_duration: np.ndarray  # ms
    video_publish: np.ndarray  # ms
    video_emb: np.ndarray  # (V, D)
    video_index: CategoryIndex
    # content: directions along which highlight intensity shows in the features
    visual_dir: np.ndarray  # (3, D), per author type
    asr_dir: np.ndarray
    comment_dir: np.ndarray
    follows: FollowGraph
    # mutable per-user state carried from hour to hour
    busy_until: np.ndarray  # end of the user's current live watch (ms)

    @property
    def n_users(self) -> int:
        return len(self.theta)

    @property
    def n_authors(self) -> int:
        return len(self.author_type)

    @property
    def n_videos(self) -> int:
        return len(self.video_author)


def build_world(cfg: SimConfig) -> World:
    g = rng(cfg.seed, WORLD)
    k, d, n_users = cfg.categories, EMBED_DIM, cfg.users
    centroids = normalize(g.standard_normal((k, d)))

    # Users. Dirichlet via normalised gammas (vectorised); the tiny floor avoids 0/0.
    theta = g.gamma(cfg.interest_concentration, size=(n_users, k)) + 1e-12
    theta = (theta / theta.sum(axis=1, keepdims=True)).astype(np.float32)
    theta_cum = np.cumsum(theta, axis=1, dtype=np.float32)
    session_rate = lognormal_with_mean(g, cfg.session_rate_mean, cfg.session_rate_sigma, n_users)
    low_live = g.random(n_users) < cfg.low_live_fraction
    conc = cfg.live_share_concentration
    regular = g.beta(cfg.live_share_mean * conc, (1 - cfg.live_share_mean) * conc, n_users)
    low = np.clip(cfg.low_live_share * g.lognormal(-0.125, 0.5, n_users), 0.0, 1.0)
    live_share = np.where(low_live, low, regular)
    # gifters are heavy live viewers: the low-live cohort almost never gifts
    p_gifter = cfg.gift_user_fraction * live_share / live_share.mean()
    gifter = g.random(n_users) < np.minimum(p_gifter, 1.0)
    gift_prop = np.where(gifter, g.lognormal(-0.5, 1.0, n_users), 0.0)
    user_bias = g.normal(0.0, cfg.b_user_sd, n_users) + cfg.b_low_live * low_live
    engagement = lognormal_with_mean(g, 1.0, 0.5, n_users)
    n_ref = min(256, n_users)
    ref_users = np.sort(g.choice(n_users, n_ref, replace=False, p=live_share / live_share.sum()))

    # Authors: 1–2 categories drawn from a mildly uneven category popularity.
    n_auth = cfg.n_authors
    cat_pop = g.dirichlet(np.full(k, cfg.category_popularity_concentration))
    primary = g.choice(k, n_auth, p=cat_pop)
    second = g.choice(k, n_auth, p=cat_pop)
    second = np.where(second == primary, (second + 1) % k, second)
    secondary = np.where(g.random(n_auth) < cfg.author_secondary_prob, second, -1)
    author_type = g.choice(3, n_auth, p=np.asarray(cfg.author_type_probs)).astype(np.int8)
    quality = g.beta(2.0, 2.5, n_auth).astype(np.float32)
    popularity = g.lognormal(0.0, 1.0, n_auth) * np.exp(quality)
    style = normalize(g.standard_normal((n_auth, d)))
    n_hosts = min(n_auth, max(cfg.min_hosts, round(cfg.host_fraction * n_auth)))
    hosts = np.sort(g.choice(n_auth, n_hosts, replace=False))
    host_activity = np.zeros(n_auth)
    host_activity[hosts] = g.lognormal(-0.125, 0.5, n_hosts)

    # Short videos: a geometric number per author, mostly in the primary category.
    per_author = g.geometric(1.0 / cfg.videos_per_author, n_auth)
    v_author = np.repeat(np.arange(n_auth), per_author)
    n_vid = len(v_author)
    use_second = (g.random(n_vid) < 0.25) & (secondary[v_author] >= 0)
    v_cat = np.where(use_second, secondary[v_author], primary[v_author])
    med = np.log(cfg.video_duration_median_s * 1000)
    duration = np.clip(g.lognormal(med, cfg.video_duration_sigma, n_vid), 5_000, 600_000)
    start = cfg.start_ms
    publish = start - 1 - (g.random(n_vid) * 30 * DAY_MS).astype(np.int64)
    noise = g.standard_normal((n_vid, d)) * (cfg.embedding_noise / np.sqrt(d))
    v_emb = normalize(centroids[v_cat] + 0.3 * style[v_author] + noise)
    v_pop = popularity[v_author] * g.lognormal(0.0, 0.8, n_vid)

    visual_dir = normalize(g.standard_normal((3, d)))
    asr_dir = normalize(g.standard_normal(d))
    comment_dir = normalize(g.standard_normal(d))

    # Initial follow graph: each user follows a few authors of their interests.
    author_index = CategoryIndex(primary, popularity, centroids)
    fu = np.repeat(np.arange(n_users), g.poisson(cfg.follows_per_user, n_users))
    fc = sample_categories(g, theta_cum, fu, 0.0)
    fa = author_index.sample(fc, g.random(len(fu)))

    return World(
        centroids=centroids,
        theta=theta,
        theta_cum=theta_cum,
        session_rate=session_rate,
        live_share=live_share,
        low_live=low_live,
        gift_prop=gift_prop,
        user_bias=user_bias,
        engagement=engagement,
        ref_users=ref_users,
        author_type=author_type,
        author_primary=primary.astype(np.int32),
        author_secondary=secondary.astype(np.int32),
        author_quality=quality,
        author_popularity=popularity,
        author_style=style,
        hosts=hosts,
        host_activity=host_activity,
        video_author=v_author,
        video_cat=v_cat.astype(np.int32),
        video_duration=duration.astype(np.int64),
        video_publish=publish,
        video_emb=v_emb,
        video_index=CategoryIndex(v_cat, v_pop, centroids),
        visual_dir=visual_dir,
        asr_dir=asr_dir,
        comment_dir=comment_dir,
        follows=FollowGraph(fu, fa, n_auth),
        busy_until=np.full(n_users, np.iinfo(np.int64).min, np.int64),
    )
