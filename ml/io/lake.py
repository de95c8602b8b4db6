"""The lake layout (DESIGN §2), a contract that checks and benchmarks read.

lake/<asset>/<partition key>/part-*.parquet + _SUCCESS
lake/quarantine/<asset>/<partition key>/part-*.parquet + _SUCCESS
lake/<asset>/...                              (unpartitioned assets)
lake/<asset>/<variant>/<partition key>/...    (model assets: one series per variant)
"""

from __future__ import annotations

import posixpath
import re

from ml.hours import parse_hour, partition_key

# The tables of the lake, by asset name (the Dagster layer names its assets from these).
CATALOG = "content_catalog"
RAW_LIVE = "raw_live_events"
RAW_SV = "raw_short_video_events"
USER_ACTIVITY = "user_activity"
LIVE_EXPOSURES = "live_exposures"
SAMPLE_TABLES = {"moment": "moment_samples", "fast": "fast_samples", "slow": "slow_samples"}
LIVE_OUTCOMES = "live_outcomes"
LIVE_SEGMENTS = "live_segments"
SEGMENT_WINDOWS = "segment_windows"
CONTENT_CTR_MODEL = "content_ctr_model"
CONTENT_PREDICTIONS = "content_predictions"
CONTENT_CTR_EVAL = "content_ctr_eval"
ABLATION = "ablation"  # unpartitioned: lake/ablation/ holds the latest study's table
CONTENT_STUDY = "content_study"  # unpartitioned, as the ablation
USER_HISTORY = "user_history"
EXPOSURE_SEQUENCES = "exposure_sequences"
MOMENT_CROSS_MODEL = "moment_cross_model"
LIVE_PREDICTIONS = "live_predictions"
MOMENT_CROSS_EVAL = "moment_cross_eval"

_ASSET_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_VARIANT_RE = re.compile(r"^[a-z][a-z0-9_]*-s[0-9]{1,4}$")


def _asset(name: str) -> str:
    if not _ASSET_RE.match(name):
        raise ValueError(f"invalid asset name {name!r}")
    return name


def checked_key(key: str) -> str:
    """A partition key, validated strictly before it becomes part of a path."""
    canonical = partition_key(parse_hour(key))
    if canonical != key:
        raise ValueError(f"invalid partition key {key!r}: expected {canonical!r}")
    return key


def partition_dir(asset: str, key: str | None = None) -> str:
    base = posixpath.join("lake", _asset(asset))
    return base if key is None else posixpath.join(base, checked_key(key))


def checked_variant(variant: str) -> str:
    """A variant key (``<name>-s<seed>``), validated before it becomes part of a path."""
    if not _VARIANT_RE.match(variant):
        raise ValueError(f"invalid variant key {variant!r}: expected <name>-s<seed>")
    return variant


def variant_dir(asset: str, variant: str, key: str | None = None) -> str:
    """lake/<asset>/<variant>[/<hour key>]: one series of hourly partitions per variant."""
    base = posixpath.join("lake", _asset(asset), checked_variant(variant))
    return base if key is None else posixpath.join(base, checked_key(key))


def quarantine_dir(asset: str, key: str | None = None) -> str:
    base = posixpath.join("lake", "quarantine", _asset(asset))
    return base if key is None else posixpath.join(base, checked_key(key))
