"""Small helpers that turn results into Dagster metadata (column schemas, Markdown tables,
readable times, PNGs) and the owners and tags every asset carries."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from ml.quality import SuiteOutcome
from ml.schema import MIN_VALID_TIME_MS

# ---- owners and tags ----------------------------------------------------------------------
DATA_OWNERS = ["team:ranking-data"]  # the data layer: ingestion, Moment, Cross, content
MODEL_OWNERS = ["team:ranking-models"]  # streaming training and evaluation
STAGES = ("ingest", "moment", "cross", "content", "train", "evaluate")
LAYERS = ("raw", "feature", "label", "sequence", "model", "evaluation", "catalog")
# Speed figures (throughput, wall time) carry this prefix, apart from the data figures.
SPEED = "speed/"


def asset_tags(stage: str, layer: str) -> dict[str, str]:
    """The tags every asset carries: its pipeline stage and its data layer (filterable in
    the UI's asset catalog as ``stage:...`` / ``layer:...``)."""
    if stage not in STAGES or layer not in LAYERS:
        raise ValueError(f"unknown stage {stage!r} or layer {layer!r}")
    return {"stage": stage, "layer": layer}


# ---- tables -------------------------------------------------------------------------------
def arrow_type_name(t: pa.DataType) -> str:
    """An Arrow type as a short column type: ``int64``, ``list<int64>``,
    ``fixed_size_list<float>[32]`` (value field names left out)."""
    if pa.types.is_fixed_size_list(t):
        return f"fixed_size_list<{arrow_type_name(t.value_type)}>[{t.list_size}]"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        kind = "large_list" if pa.types.is_large_list(t) else "list"
        return f"{kind}<{arrow_type_name(t.value_type)}>"
    if pa.types.is_dictionary(t):
        return f"dictionary<{arrow_type_name(t.value_type)}>"
    return str(t)


def column_schema(schema: pa.Schema, descriptions: dict[str, str] | None = None) -> dg.TableSchema:
    """An Arrow schema as the Dagster column schema the UI shows on the asset page."""
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                f.name,
                arrow_type_name(f.type),
                description=descriptions.get(f.name),
                constraints=None if f.nullable else dg.TableColumnConstraints(nullable=False),
            )
            for f in schema
        ]
    )


def table_metadata(schema: pa.Schema, rows: int) -> dict:
    """``dagster/column_schema`` and ``dagster/row_count`` of a published table."""
    return {"dagster/column_schema": column_schema(schema), "dagster/row_count": int(rows)}


def schema_md(schema: pa.Schema) -> dg.MetadataValue:
    """A schema as a Markdown table (for the second and third tables of an asset)."""
    return md_table([{"column": f.name, "type": arrow_type_name(f.type)} for f in schema])


def speed(**figures: float) -> dict:
    """Throughput and timing figures under ``speed/...``, kept numeric."""
    return {f"{SPEED}{k}": v for k, v in figures.items()}


def md_table(rows: list[dict], columns: list[str] | None = None) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("_none_")
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


def counts_table(counts: dict[str, int], key: str, total: int | None = None) -> dg.MetadataValue:
    """Counts per ``key`` as a table, most frequent first (ties by name), with each one's
    share of ``total`` when given."""
    rows = [{key: k, "rows": v} for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    if total:
        for r in rows:
            r["share"] = f"{r['rows'] / total:.4%}"
    return md_table(rows)


def preview(table: pa.Table, n: int = 5, columns: list[str] | None = None) -> dg.MetadataValue:
    """The first ``n`` rows; integer ``..._ms`` columns holding epoch times (not durations)
    shown as ISO UTC times, long lists cut short."""
    cols = [c for c in (columns or table.column_names) if c != "raw_line"]
    rows = table.select(cols).slice(0, n)
    stamps = [c for c in cols if _is_timestamp(rows.column(c), c)]
    out = rows.to_pylist()
    for r in out:
        for c in stamps:
            r[c] = iso(r[c]) if r[c] is not None else None
    return md_table(out, cols)


_MS = re.compile(r"(^|_)ms$")


def _is_timestamp(col: pa.ChunkedArray, name: str) -> bool:
    """An integer column named ``..._ms`` whose values are all epoch times (>= 2000-01-01):
    ``event_time_ms`` is, ``watch_ms`` (a duration) is not."""
    if not (_MS.search(name) and pa.types.is_integer(col.type)) or col.null_count == len(col):
        return False
    return pc.min(col).as_py() >= MIN_VALID_TIME_MS


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
    if isinstance(v, list) and len(v) > 4:  # an embedding or a sequence: its head only
        v = "[" + ", ".join(_cell(x) for x in v[:4]) + f", … ({len(v)})]"
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
