"""Data quality: the GX runner (``runner``) and one module of rules per stage
(``ingest``, ``moment``, ``cross``, ``content``)."""

from ml.quality.runner import (
    DUPLICATE_RATE_BAND,
    MAX_QUARANTINE_RATE,
    Expect,
    SuiteOutcome,
    merge,
    rate_expectation,
    validate,
)

__all__ = [
    "DUPLICATE_RATE_BAND",
    "MAX_QUARANTINE_RATE",
    "Expect",
    "SuiteOutcome",
    "merge",
    "rate_expectation",
    "validate",
]
