"""The one hourly partitioning shared by every hourly asset (DESIGN §3)."""

from __future__ import annotations

import os
import re
import sys

import dagster as dg

from ml.hours import HOUR_MS, InvalidHourError, parse_hour, partition_key
from ml.io.lake import checked_key, checked_variant
from ml.train.variants import VARIANT_KEYS

START_KEY = os.environ.get("LIVECROSS_START", "2026-01-01-00:00")
try:
    START_MS = parse_hour(START_KEY)
except InvalidHourError as e:
    raise InvalidHourError(f"LIVECROSS_START: {e}") from e

hourly_partitions = dg.HourlyPartitionsDefinition(start_date=partition_key(START_MS))
HOUR_DIM, VARIANT_DIM = "hour", "variant"

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


# Model assets: one series of hourly partitions per variant × seed (ml.train.variants),
# so every variant is visible, comparable and backfillable in the UI.
variant_partitions = dg.StaticPartitionsDefinition(list(VARIANT_KEYS))
model_partitions = dg.MultiPartitionsDefinition(
    {HOUR_DIM: hourly_partitions, VARIANT_DIM: variant_partitions}
)
# model[H, v] <- the same hour of an hourly asset
SAME_HOUR = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=HOUR_DIM)
# model[H, v] <- model[H-1, v]
PREVIOUS_MODEL_HOUR = dg.MultiPartitionMapping(
    {
        HOUR_DIM: dg.DimensionPartitionMapping(HOUR_DIM, PREVIOUS_HOUR),
        VARIANT_DIM: dg.DimensionPartitionMapping(VARIANT_DIM, dg.IdentityPartitionMapping()),
    }
)


def model_partition(context) -> tuple[str, int, str]:
    """(hour key, hour start in ms, variant) of a model run's partition, both validated."""
    keys = context.partition_key.keys_by_dimension
    key, variant = keys[HOUR_DIM], keys[VARIANT_DIM]
    checked_key(key)
    checked_variant(variant)
    if not hourly_partitions.has_partition_key(key):
        raise InvalidHourError(f"partition key {key!r} is outside the hourly partitions")
    if variant not in VARIANT_KEYS:
        raise ValueError(f"unknown variant {variant!r}")
    return key, parse_hour(key), variant


def partition_key_hint(bad_key: str | None) -> str:
    """What a partition key looks like, for a user who typed one Dagster did not know."""
    lines = [
        "livecross: hourly partition keys are YYYY-MM-DD-HH:00 (UTC), from "
        f"{hourly_partitions.get_first_partition_key()} (LIVECROSS_START) to the last "
        "complete hour; model assets take HOUR|VARIANT, e.g. "
        f"'{START_KEY}|{VARIANT_KEYS[0]}'."
    ]
    if bad_key:
        try:
            fixed = partition_key(parse_hour(bad_key.split("|")[0].replace("T", "-")))
        except InvalidHourError:
            fixed = None
        if fixed and fixed != bad_key:
            lines.append(f"Did you mean --partition {fixed}?")
        elif fixed and not hourly_partitions.has_partition_key(fixed):
            lines.append(
                f"{fixed} is outside the partitions (before LIVECROSS_START, or not over yet)."
            )
    return "\n".join(lines)


_BAD_KEY = re.compile(r"partition key `([^`]*)`")


def install_partition_key_hint() -> None:
    """Append :func:`partition_key_hint` to the traceback of a CLI command that fails on
    an unknown partition key (Dagster's own message names the key, not the format)."""
    previous = sys.excepthook

    def hook(kind, exc, tb):
        previous(kind, exc, tb)
        text = str(exc)
        if "partition key" in text.lower() and "PartitionsDefinition" in text:
            match = _BAD_KEY.search(text)
            print(partition_key_hint(match.group(1) if match else None), file=sys.stderr)

    sys.excepthook = hook
