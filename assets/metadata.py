"""Small helpers that turn results into Dagster metadata (Markdown tables, times)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from ml.quality import SuiteOutcome


def md_table(rows: list[dict], columns: list[str] | None = None) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("_none_")
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


def counts_table(counts: dict[str, int], key: str, total: int | None = None) -> dg.MetadataValue:
    rows = [{key: k, "rows": v} for k, v in sorted(counts.items())]
    if total:
        for r in rows:
            r["share"] = f"{r['rows'] / total:.4%}"
    return md_table(rows)


def preview(table: pa.Table, n: int = 5, columns: list[str] | None = None) -> dg.MetadataValue:
    cols = [c for c in (columns or table.column_names) if c != "raw_line"]
    return md_table(table.select(cols).slice(0, n).to_pylist(), cols)


def iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def time_span(table: pa.Table, column: str) -> str:
    if table.num_rows == 0:
        return "-"
    mm = pc.min_max(table.column(column)).as_py()
    return f"{iso(mm['min'])} → {iso(mm['max'])}"


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, bytes):
        v = v[:60].decode("utf-8", "replace")
    return str(v).replace("|", "\\|").replace("\n", " ")[:80]


def png(data: bytes, alt: str = "plot") -> dg.MetadataValue:
    """A PNG shown inline in the UI (Markdown with the image as a data URI)."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode()})")


def check_result(outcome: SuiteOutcome, **extra) -> dg.AssetCheckResult:
    """A GX suite's outcome as a Dagster check result: the expectations as Markdown, the
    failed ones apart, and the figures the check computed."""
    meta = {"expectations": dg.MetadataValue.md(outcome.markdown()), **extra}
    failed = outcome.failures()
    if failed:
        meta["failed"] = md_table(failed)
    return dg.AssetCheckResult(passed=outcome.success, metadata=meta)
