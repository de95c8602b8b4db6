"""The Great Expectations 1.x runner: expectations defined in code, validated on a frame.

GX takes ~3-5 s to import, so it is imported lazily, once per process. Suites are plain
lists of expectation constructors so they can be built without importing GX.
The Dagster asset checks call ``validate`` and turn the outcome into check results;
the suites live beside their stage (``ingest``, ``moment``, ``cross``, ``content``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pandas as pd

# Thresholds: blocking checks fail the partition past these (overridable per deployment).
MAX_QUARANTINE_RATE = float(os.environ.get("LIVECROSS_MAX_QUARANTINE_RATE", "0.05"))
DUPLICATE_RATE_BAND = (0.0, float(os.environ.get("LIVECROSS_MAX_DUPLICATE_RATE", "0.05")))


@dataclass(frozen=True)
class Expect:
    """One expectation: GX class name + keyword arguments."""

    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        target = self.kwargs.get("column") or self.kwargs.get("column_A") or "table"
        return f"{self.kind}({target})"


@dataclass
class SuiteOutcome:
    success: bool
    results: list[dict[str, Any]]  # one per expectation: label, success, observed values

    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["success"]]

    def markdown(self) -> str:
        rows = ["| expectation | ok | observed | unexpected |", "|---|---|---|---|"]
        for r in self.results:
            rows.append(
                f"| {r['expectation']} | {'yes' if r['success'] else '**no**'} "
                f"| {r.get('observed')} | {r.get('unexpected_count')} |"
            )
        return "\n".join(rows)


def merge(*outcomes: SuiteOutcome) -> SuiteOutcome:
    """One outcome of several suites: passes when every one does; results in order."""
    return SuiteOutcome(all(o.success for o in outcomes), [r for o in outcomes for r in o.results])


@cache
def _batch_definition():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = ctx.data_sources.add_pandas("livecross").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole")


def validate(df: pd.DataFrame, expectations: list[Expect], name: str) -> SuiteOutcome:
    """Run the expectations on ``df`` with GX and summarise each result."""
    batch_definition = _batch_definition()  # creates the context suites need
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for e in expectations:
        suite.add_expectation(getattr(gx.expectations, e.kind)(**e.kwargs))
    result = batch_definition.get_batch(batch_parameters={"dataframe": df}).validate(suite)
    summary = []
    for e, r in zip(expectations, _in_suite_order(result, expectations), strict=True):
        summary.append(
            {
                "expectation": e.label(),
                "success": bool(r.success),
                "observed": _short(r.result.get("observed_value")),
                "unexpected_count": r.result.get("unexpected_count"),
                "sample": _short(r.result.get("partial_unexpected_list")),
            }
        )
    return SuiteOutcome(bool(result.success), summary)


def _in_suite_order(result, expectations: list[Expect]):
    # GX may reorder results; match them back by type and kwargs.
    remaining = list(result.results)
    ordered = []
    for e in expectations:
        gx_type = _snake(e.kind)
        for i, r in enumerate(remaining):
            cfg = r.expectation_config
            if cfg.type == gx_type and all(cfg.kwargs.get(k) == v for k, v in e.kwargs.items()):
                ordered.append(remaining.pop(i))
                break
        else:
            raise RuntimeError(f"no GX result for {e.label()}")
    return ordered


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name)
    return out.lstrip("_")


def _short(v: Any) -> Any:
    if isinstance(v, list):
        return [_short(x) for x in v[:5]]
    if isinstance(v, float):
        return round(v, 6)
    return v if v is None or isinstance(v, (int, str, bool)) else str(v)[:80]


def rate_expectation(column: str, max_value: float, min_value: float = 0.0) -> Expect:
    """A bound on one figure of a one-row stats frame (rates, balances)."""
    return Expect(
        "ExpectColumnValuesToBeBetween",
        {"column": column, "min_value": min_value, "max_value": max_value},
    )
