"""The one hourly partitioning shared by every hourly asset (DESIGN §3)."""

from __future__ import annotations

import os

import dagster as dg

from ml.hours import HOUR_MS, InvalidHourError, parse_hour, partition_key
from ml.io.lake import checked_key

START_KEY = os.environ.get("LIVECROSS_START", "2026-01-01-00:00")
try:
    START_MS = parse_hour(START_KEY)
except InvalidHourError as e:
    raise InvalidHourError(f"LIVECROSS_START: {e}") from e

hourly_partitions = dg.HourlyPartitionsDefinition(start_date=partition_key(START_MS))

# The partition just before: cross-hour dedup of raw events looks one hour back.
PREVIOUS_HOUR = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)


def partition_hour(context) -> tuple[str, int]:
    """(key, hour start in ms) of the run's partition, validated before it becomes a path."""
    key = context.partition_key
    checked_key(key)
    if not hourly_partitions.has_partition_key(key):
        raise InvalidHourError(
            f"partition key {key!r} is outside the hourly partitions "
            f"(start {hourly_partitions.get_first_partition_key()}, LIVECROSS_START)"
        )
    return key, parse_hour(key)


def previous_key(hour_ms: int) -> str | None:
    """The previous partition's key, or None for the first partition."""
    return None if hour_ms <= START_MS else partition_key(hour_ms - HOUR_MS)
