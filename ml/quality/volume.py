"""Volume gates: an hour's row count against the hours before it.

A broken upstream (a stale catalog quarantining most events, a sink that lost a file)
shows first as an hour far smaller than the ones before; a replay or a duplicate storm as
one far larger. The band is relative to the median of the previous hours, wide enough for
the day's rhythm (the simulator's peak-to-trough hour-over-hour change is ~20 %).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

# (low, high): an hour passes when low <= rows / median(previous) <= high.
VOLUME_BAND = tuple(float(x) for x in os.environ.get("LIVECROSS_VOLUME_BAND", "0.5,2.0").split(","))
VOLUME_HOURS = 3  # previous hours the baseline is the median of
MIN_BASELINE_ROWS = 100  # below this the previous hours are too small to judge by


@dataclass(frozen=True)
class VolumeVerdict:
    rows: int
    baseline: float | None  # median of the previous hours; None: nothing to compare with
    ratio: float | None
    passed: bool
    reason: str


def volume_verdict(
    rows: int, previous: list[int], band: tuple[float, float] = VOLUME_BAND
) -> VolumeVerdict:
    """Judge ``rows`` against the row counts of the previous hours (oldest first)."""
    low, high = band
    if not low < high:
        raise ValueError(f"LIVECROSS_VOLUME_BAND must be low,high with low < high: {band}")
    if not previous:
        return VolumeVerdict(rows, None, None, True, "no previous hour to compare with")
    baseline = float(np.median(previous))
    if baseline < MIN_BASELINE_ROWS:
        return VolumeVerdict(
            rows, baseline, None, True, f"previous hours too small to judge (< {MIN_BASELINE_ROWS})"
        )
    ratio = rows / baseline
    passed = low <= ratio <= high
    reason = f"{rows} rows = {ratio:.2f} x the median of the previous {len(previous)} hour(s)"
    return VolumeVerdict(
        rows, baseline, ratio, passed, reason + ("" if passed else f", outside [{low}, {high}]")
    )
