"""Hour arithmetic shared by the simulator, the lake and Dagster partitions.

All times are Unix milliseconds, UTC. A partition key is Dagster's hourly format
``YYYY-MM-DD-HH:MM`` (minutes always ``00``); a landing directory is ``YYYY-MM-DD-HH``.
Keys are validated strictly before they become paths.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

HOUR_MS = 3_600_000
PARTITION_FMT = "%Y-%m-%d-%H:%M"
LANDING_FMT = "%Y-%m-%d-%H"
_PARTITION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}:00$")
_LANDING_RE = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}$")


class InvalidHourError(ValueError):
    """A partition key or hour string that is not a valid UTC hour."""


def parse_hour(text: str) -> int:
    """Start of the hour, in ms, from ``YYYY-MM-DD-HH:00`` or ``YYYY-MM-DD-HH``."""
    if not isinstance(text, str):
        raise InvalidHourError(f"hour must be a string, got {type(text).__name__}")
    if _PARTITION_RE.match(text):
        fmt = PARTITION_FMT
    elif _LANDING_RE.match(text):
        fmt = LANDING_FMT
    else:
        raise InvalidHourError(
            f"invalid hour {text!r}: expected 'YYYY-MM-DD-HH:00' (partition key) or 'YYYY-MM-DD-HH'"
        )
    try:
        dt = datetime.strptime(text, fmt).replace(tzinfo=UTC)
    except ValueError as e:
        raise InvalidHourError(f"invalid hour {text!r}: {e}") from e
    return int(dt.timestamp() * 1000)


def partition_key(hour_ms: int) -> str:
    return _dt(hour_ms).strftime(PARTITION_FMT)


def landing_dir(hour_ms: int) -> str:
    return _dt(hour_ms).strftime(LANDING_FMT)


def hour_floor(ms: int) -> int:
    return ms - ms % HOUR_MS


def hour_range(start_ms: int, hours: int) -> list[int]:
    return [start_ms + i * HOUR_MS for i in range(hours)]


def _dt(ms: int) -> datetime:
    if ms % HOUR_MS:
        raise InvalidHourError(f"{ms} is not the start of an hour")
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
