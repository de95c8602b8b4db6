"""The simulator's ground truth that evaluation (never training) reads from the landing
zone: the true P(enter) of each live exposure, and each user's live-activity cohort. Both
are absent on real data (KuaiLive imports), and every reader then goes without them."""

from __future__ import annotations

import pyarrow as pa

from ml.hours import landing_dir
from ml.io.store import Store


def read_oracle(landing: Store, hour_ms: int) -> pa.Table | None:
    """The true P(enter) of the exposures at hour H (None on real data)."""
    rel = f"oracle/live_exposures/{landing_dir(hour_ms)}"
    if landing.manifest(rel) is None:
        return None
    return landing.read_published(rel, columns=["user_id", "item_id", "event_time_ms", "p_enter"])


def read_cohorts(landing: Store) -> pa.Table | None:
    """Each simulated user's ``low_live_cohort`` flag (None on real data)."""
    rel = "oracle/users.parquet"
    return (
        landing.read_parquet(rel, ["user_id", "low_live_cohort"]) if landing.exists(rel) else None
    )
