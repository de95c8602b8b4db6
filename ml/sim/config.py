"""Every number of the simulator, in one frozen dataclass, plus its seeded RNG streams.

The defaults describe a mid-size platform: ~10% of exposures are live rooms, live click
(enter) rate ~10% rising clearly with the room's highlight intensity, most users never
gift, 40% of users almost never see live. Change a number here or with ``--set``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.hours import InvalidHourError, parse_hour

# Independent RNG streams: each kind of randomness has its own, keyed by (seed, stream,
# hour, ...), so that turning one knob (say --late-rate) does not reshuffle the others,
# and hour i draws the same numbers whatever the length of the run.
WORLD, ROOMS, ACTIVITY, REPORTING, CONTENT, BAD, CORRUPT = range(7)

# Rooms are scheduled this many hours before the window, so the first hour already has
# rooms in full swing. It bounds room length (max_room_hours).
PRE_HOURS = 4


@dataclass(frozen=True)
class SimConfig:
    # ---- window ------------------------------------------------------------------------
    start: str = "2026-01-01-00:00"  # first simulated (report) hour, 'YYYY-MM-DD-HH[:00]'
    hours: int = 4
    users: int = 5000
    seed: int = 0

    # ---- delivery quality ------------------------------------------------------------
    late_rate: float = 0.01  # fraction of events reported 1–3 h late
    late_min_s: float = 3600.0
    late_max_s: float = 3 * 3600.0
    dup_rate: float = 0.002  # at-least-once re-deliveries (same event_id, later report)
    dup_min_s: float = 3.0
    dup_max_s: float = 600.0  # < 1 h: a re-delivery lands in the same or the next hour
    report_jitter_median_ms: float = 700.0
    report_jitter_sigma: float = 0.7
    bad_rate: float = 0.0  # fraction of landing lines that are malformed (every class cycles)
    corrupt_files: int = 0  # landing event files written truncated mid-gzip-stream

    # ---- world -------------------------------------------------------------------------
    categories: int = 32  # K
    category_popularity_concentration: float = 5.0  # Dirichlet over categories for authors
    interest_concentration: float = 0.3  # theta_u ~ Dirichlet(0.3)
    embedding_noise: float = 0.45  # item embedding = normalize(c_cat + noise)
    users_per_author: int = 25
    min_authors: int = 200
    videos_per_author: float = 25.0
    author_secondary_prob: float = 0.5
    author_type_probs: tuple[float, float, float] = (0.35, 0.30, 0.35)  # talent, game, chat
    host_fraction: float = 0.3  # authors who host live rooms
    min_hosts: int = 40
    follows_per_user: float = 3.0  # initial follow graph, by interest

    # ---- users ---------------------------------------------------------------------------
    session_rate_mean: float = 0.8  # sessions per user-hour (lognormal, heavy-tailed)
    session_rate_sigma: float = 1.0
    exposures_per_session: float = 12.0
    exposure_gap_s: float = 20.0
    diurnal_amplitude: float = 0.3  # activity peaks at 13:00 UTC (21:00 in UTC+8)
    low_live_fraction: float = 0.4  # the low-live-activity cohort
    low_live_share: float = 0.005  # their share of live among exposures
    live_share_mean: float = 0.165  # everyone else's (Beta, mean), ~10% overall
    live_share_concentration: float = 12.0
    gift_user_fraction: float = 0.12  # users who ever gift (more likely the more live they see)
    explore: float = 0.15  # recommender exploration: uniform category / room
    rec_sharpness: float = 8.0  # recommender: weight exp(sharpness * interest match)

    # ---- live rooms ------------------------------------------------------------------
    room_start_rate: float = 0.35  # per idle host-hour
    room_median_min: float = 50.0  # duration lognormal; some run 2–3 h
    room_sigma: float = 0.55
    room_min_min: float = 5.0
    max_room_hours: float = 4.0
    talent_burst_prob: float = 0.04  # per segment
    game_round_segments: tuple[int, int] = (8, 20)
    chat_walk_sd: float = 0.06

    # ---- P(enter) = sigmoid(b0 + b_interest*<theta_u, cat> + b_highlight*h + ...) ----
    # An auto-play slide feed: ~40 % of live impressions enter, so an exposure has about
    # one positive task on average and the moment stream is ~2x the exposures (DESIGN 7.1).
    b0: float = -1.5
    b_interest: float = 3.0
    b_highlight: float = 2.5
    b_quality: float = 1.0
    b_follow: float = 1.5
    b_user_sd: float = 0.5  # per-user random effect
    b_low_live: float = -0.5  # the low-live cohort also clicks less
    enter_noise_sd: float = 0.5  # per-exposure noise

    # ---- live behaviour after entering -----------------------------------------------
    watch_median_s: float = 45.0
    watch_sigma: float = 1.5
    stay_prob: float = 0.04  # "stayers" watch most of the rest of the stream...
    stay_prob_follower: float = 0.25  # ...more so fans of the author
    stay_prob_gifter: float = 0.25  # ...and gifters (times min(1, gift propensity))
    like_per_min: float = 0.5
    comment_per_min: float = 0.2
    follow_per_min: float = 0.01
    gift_per_min: float = 0.05  # times the user's gift propensity
    share_per_min: float = 0.003
    gift_value_median: float = 5.0
    gift_value_sigma: float = 1.3

    # ---- short video ---------------------------------------------------------------------
    video_duration_median_s: float = 55.0
    video_duration_sigma: float = 0.6
    play_logit: float = 2.0  # P(play) ~ 0.9
    watch_ratio_median: float = 0.5
    watch_ratio_sigma: float = 0.6
    sv_like_logit: float = -3.8
    sv_comment_logit: float = -5.4
    sv_follow_logit: float = -6.0
    sv_share_logit: float = -5.6

    # ---- output ----------------------------------------------------------------------------
    max_lines_per_file: int = 1_000_000
    threads: int = 0  # 0: min(4, cpu count); does not change the bytes written

    def __post_init__(self) -> None:
        errors = list(self._errors())
        if errors:
            raise ValueError("invalid SimConfig: " + "; ".join(errors))

    def _errors(self):
        try:
            parse_hour(self.start)
        except InvalidHourError as e:
            yield f"start: {e}"
        ints = {
            "hours": 1,
            "users": 10,
            "seed": 0,
            "corrupt_files": 0,
            "categories": 2,
            "users_per_author": 1,
            "min_authors": 2,
            "min_hosts": 1,
            "max_lines_per_file": 1,
            "threads": 0,
        }
        for name, lo in ints.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                yield f"{name} must be an integer >= {lo}, got {v!r}"
        unit = (
            "late_rate",
            "dup_rate",
            "host_fraction",
            "low_live_fraction",
            "explore",
            "stay_prob",
            "stay_prob_follower",
            "stay_prob_gifter",
        )
        for name in unit:
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                yield f"{name} must be in [0, 1], got {v!r}"
        if not 0.0 <= self.bad_rate < 0.5:
            yield f"bad_rate must be in [0, 0.5), got {self.bad_rate!r}"
        if isinstance(self.seed, int) and self.seed >= 2**63:
            yield "seed must be < 2**63"
        if self.corrupt_files > 2 * self.hours:
            yield (
                f"corrupt_files={self.corrupt_files} but a {self.hours}-hour run writes only "
                f"{2 * self.hours} event files (live + short_video per hour)"
            )
        if not 0.0 < self.dup_min_s <= self.dup_max_s < 3600.0:
            yield "need 0 < dup_min_s <= dup_max_s < 3600 (a re-delivery comes within the hour)"
        if not 0.0 < self.late_min_s <= self.late_max_s <= 24 * 3600.0:
            yield "need 0 < late_min_s <= late_max_s <= 86400"
        if not 0.0 < self.max_room_hours <= PRE_HOURS:
            yield f"max_room_hours must be in (0, {PRE_HOURS}]"
        if not 0.0 < self.room_min_min <= self.room_median_min <= 60.0 * self.max_room_hours:
            yield "need 0 < room_min_min <= room_median_min <= max_room_hours*60"
        if len(self.author_type_probs) != 3 or abs(sum(self.author_type_probs) - 1.0) > 1e-6:
            yield "author_type_probs must be three probabilities summing to 1"
        lo, hi = self.game_round_segments
        if not 1 <= lo <= hi:
            yield "game_round_segments must be (lo, hi) with 1 <= lo <= hi"
        for name in ("exposures_per_session", "exposure_gap_s", "videos_per_author"):
            if getattr(self, name) < 1.0:
                yield f"{name} must be >= 1"
        positive = (
            "session_rate_mean",
            "interest_concentration",
            "category_popularity_concentration",
            "live_share_concentration",
            "watch_median_s",
            "video_duration_median_s",
            "watch_ratio_median",
            "gift_value_median",
            "report_jitter_median_ms",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                yield f"{name} must be > 0"
        if not 0.0 < self.live_share_mean < 1.0 or not 0.0 <= self.low_live_share < 1.0:
            yield "live shares must be in (0, 1)"

    # ---- derived ---------------------------------------------------------------------------
    @property
    def start_ms(self) -> int:
        return parse_hour(self.start)

    @property
    def n_authors(self) -> int:
        return max(self.min_authors, self.users // self.users_per_author)

    @property
    def n_threads(self) -> int:
        import os

        return self.threads or max(1, min(4, os.cpu_count() or 1))

    def replace(self, **changes: Any) -> SimConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """The config as written to oracle/sim_config.json (no machine-dependent fields)."""
        d = dataclasses.asdict(self)
        d.pop("threads")
        return json.dumps(d, sort_keys=True, indent=1) + "\n"


def rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """An independent generator for (seed, stream, keys...) — same keys, same numbers."""
    ss = np.random.SeedSequence(seed, spawn_key=(stream, *(int(k) for k in keys)))
    return np.random.Generator(np.random.PCG64(ss))
