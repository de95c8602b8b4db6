"""Reading the KuaiLive-M3 source tables: discovery, column checks, streaming batches,
and a per-row verdict (the first reason that applies) for every row read.

A table is ``<name>.parquet``, ``<name>.csv`` (or ``.csv.gz``), or a directory
``<name>/`` (or ``<name>.parquet/``) of shards read in sorted order. Parquet is read by
``iter_batches``, CSV by pyarrow's streaming reader with every used column as text (typed
afterwards by ``columns``), so one unparsable value rejects its row instead of failing the
block; a CSV row that does not split into the header's fields is kept as a
``malformed_row`` reject. Memory is bounded by the batch size (and, for Parquet, the row
group). Row numbers are 1-based within each file; for CSV they count the data rows parsed
(header excluded; a malformed row skipped earlier in the file is not counted).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ml.importers.columns import to_int, to_vec

# Used columns per table (the reference schema's names) and how they are read.
# int: int64 (also from text "12" / "12.0"); str: text; vecN: list of N finite floats.
TABLES: dict[str, dict[str, str]] = {
    "user_id_set": {"user_id": "int"},
    "author_profile": {"author_id": "int", "is_live_author": "int", "fans_user_num": "str"},
    "live_room_meta": {
        "live_id": "int", "author_id": "int", "start_timestamp": "int", "end_timestamp": "int",
    },
    "live_emb_64": {"live_id": "int", "embedding": "vec64"},
    "photo_meta": {"photo_id": "int", "author_id": "int", "duration": "int"},
    "photo_tag": {"photo_id": "int", "first_level_category_name": "str"},
    "photo_emb_128": {"photo_id": "int", "feature": "vec128"},
    "live_show": {"live_id": "int", "user_id": "int", "author_id": "int", "show_timestamp": "int"},
    "live_interaction": {
        "user_id": "int", "author_id": "int", "live_id": "int",
        "live_play_start_timestamp": "int", "live_play_end_timestamp": "int",
        "live_source_category": "str", "play_duration": "int", "send_gift_cnt": "int",
        "send_gift_num": "int", "follow_author_cnt": "int",
    },
    "live_like": {"user_id": "int", "live_id": "int", "like_timestamp": "int"},
    "live_comment": {
        "live_stream_id": "int", "user_id": "int", "author_id": "int", "comment_ts": "int",
    },
    "live_share": {"user_id": "int", "live_id": "int", "author_id": "int", "share_timestamp": "int"},
    "photo_play": {
        "user_id": "int", "photo_id": "int", "author_id": "int", "enter_timestamp": "int",
        "leave_timestamp": "int", "enter_play_type": "str", "like_status_type": "str",
        "is_follow_before_play": "int", "is_follow_after_play": "int",
    },
    "live_emb_128_ts": {"live_stream_id": "int", "feature_128": "vec128", "timestamp": "int"},
}  # fmt: skip
VECTOR_BATCH_DIVISOR = 8  # tables with a vector column are read in smaller batches
REQUIRED_TABLES = ("author_profile", "live_room_meta", "photo_meta")
# Known and deliberately not imported (see the importer's docstring).
NOT_IMPORTED = {
    "photo_interaction": "a user x video day aggregate without timestamps: no event can be "
    "placed in an hour without inventing times, and its plays are already photo_play rows",
    "live_room_set": "the room ids again; live_room_meta is the room catalog",
}
_TEXT_TABLES = ("live_comment",)  # free text: quoted values may hold newlines

# Reasons a source row is rejected, in the order they are checked within a table.
REJECT_REASONS = (
    "malformed_row",  # a CSV row the parser cannot split into the header's fields
    "wrong_type",  # a value that cannot be read as its type (e.g. "abc" as a timestamp)
    "null_id",  # a user/room/video/author id missing
    "missing_time",  # a timestamp the row needs is missing
    "missing_value",  # another value the row needs is missing
    "absurd_time",  # a timestamp before 2000-01-01 (schema.MIN_VALID_TIME_MS)
    "negative_value",  # negative duration, count or gift number
    "end_before_start",  # end timestamp before the start timestamp
    "absurd_value",  # beyond the contract's bounds (schema.MAX_*) or the per-session caps
    "bad_embedding",  # not a list of the expected length of finite numbers
    "unknown_author",  # an author id not in the (clean) author_profile
    "unknown_item",  # a room / video id not in the (clean) catalog
    "unknown_user",  # a user id not in user_id_set (when that table is present)
    "before_room_start",  # a segment ending at or before its room's start_timestamp
    "duplicate_id",  # a catalog/embedding/tag row whose id an accepted row already has
    "duplicate_segment",  # a second segment of a room with the same end timestamp
)
_CODE = {r: i + 1 for i, r in enumerate(REJECT_REASONS)}

REJECTS_SCHEMA = pa.schema(
    [
        ("table", pa.string()),
        ("source_file", pa.string()),  # relative to --src
        ("row_number", pa.int64()),  # 1-based within the file (see above); 0: unknown
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("row", pa.string()),  # the row as read, as JSON
    ]
)

_NULLS = ["", "NULL", "null", "None", "NaN", "nan", "\\N"]


class SourceError(ValueError):
    """The source directory cannot be imported as it is (named file and cause)."""


class MissingTableError(SourceError):
    pass


class MissingColumnError(SourceError):
    pass


@dataclass
class Source:
    name: str
    root: str
    files: list[str]  # absolute paths
    fmt: str  # "csv" | "parquet"

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.root).replace(os.sep, "/")

    def rows_hint(self) -> int | None:
        if self.fmt != "parquet":
            return None
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)


def locate(root: str, name: str) -> Source | None:
    """The table's files, or None if the source directory does not hold it."""
    for ext, fmt in ((".parquet", "parquet"), (".csv", "csv"), (".csv.gz", "csv")):
        path = os.path.join(root, name + ext)
        if os.path.isfile(path):
            return Source(name, root, [path], fmt)
    for d in (os.path.join(root, name), os.path.join(root, name + ".parquet")):
        if os.path.isdir(d):
            found: list[str] = []
            for dirpath, _, names in os.walk(d):
                found += [os.path.join(dirpath, n) for n in names if not n.startswith((".", "_"))]
            parquet = sorted(f for f in found if f.endswith(".parquet"))
            csvs = sorted(f for f in found if f.endswith((".csv", ".csv.gz")))
            if parquet or csvs:
                return Source(name, root, parquet or csvs, "parquet" if parquet else "csv")
    return None


def file_columns(path: str, fmt: str) -> list[str]:
    try:
        if fmt == "parquet":
            return list(pq.ParquetFile(path).schema_arrow.names)
        with pa.input_stream(path, compression="detect") as f:
            first = io.TextIOWrapper(f, encoding="utf-8-sig", newline="").readline()
        return [c.strip() for c in next(csv.reader([first]), [])]
    except (OSError, pa.ArrowException, UnicodeDecodeError) as e:
        raise SourceError(f"{path}: cannot be read as {fmt}: {e}") from e


def check_columns(source: Source) -> None:
    """One clear error naming the file and the first missing column."""
    want = list(TABLES[source.name])
    for path in source.files:
        have = file_columns(path, source.fmt)
        for col in want:
            if col not in have:
                raise MissingColumnError(
                    f"{path}: missing column {col!r} required for table {source.name!r} "
                    f"(the file has: {', '.join(have) or 'no columns'})"
                )


@dataclass
class Batch:
    table: str
    file: str  # relative to the source root
    row0: int  # 0-based index of the first row within the whole table (all files)
    file_row0: int  # 1-based row number of the first row within its file
    raw: pa.Table

    @property
    def n(self) -> int:
        return self.raw.num_rows


@dataclass
class Malformed:
    table: str
    file: str
    line: int  # 0 when the parser cannot tell (files whose values may hold newlines)
    text: str
    detail: str


def read_batches(
    source: Source, batch_rows: int, malformed: list[Malformed] | None = None
) -> Iterator[Batch]:
    cols = list(TABLES[source.name])
    if any(kind.startswith("vec") for kind in TABLES[source.name].values()):
        batch_rows = max(1, batch_rows // VECTOR_BATCH_DIVISOR)  # a row is ~0.5 KB, not ~50 B
    row0 = 0
    for path in source.files:
        rel = source.rel(path)
        file_row = 1
        for raw in _file_batches(source, path, rel, cols, batch_rows, malformed):
            if raw.num_rows == 0:
                continue
            yield Batch(source.name, rel, row0, file_row, raw)
            row0 += raw.num_rows
            file_row += raw.num_rows


def _file_batches(source, path, rel, cols, batch_rows, malformed) -> Iterator[pa.Table]:
    try:
        if source.fmt == "parquet":
            for b in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=cols):
                yield pa.Table.from_batches([b])
            return

        def on_invalid(row) -> str:
            if malformed is not None:
                where = f"CSV line {row.number}" if row.number else "a CSV row"
                detail = (
                    f"{where} has {row.actual_columns} fields, the header {row.expected_columns}"
                )
                malformed.append(
                    Malformed(source.name, rel, int(row.number or 0), row.text, detail)
                )
            return "skip"

        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=max(1 << 16, batch_rows * 64)),
            parse_options=pcsv.ParseOptions(
                newlines_in_values=source.name in _TEXT_TABLES, invalid_row_handler=on_invalid
            ),
            convert_options=pcsv.ConvertOptions(
                include_columns=cols,
                column_types={c: pa.string() for c in cols},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=_NULLS,
            ),
        )
        for b in reader:
            yield pa.Table.from_batches([b])
    except (OSError, pa.ArrowException) as e:
        raise SourceError(f"{path}: cannot be read as {source.fmt}: {e}") from e


# ---- per-row verdicts --------------------------------------------------------------------
@dataclass
class Verdict:
    """The reject reason (first that applies) and the column it concerns, per row."""

    batch: Batch
    code: np.ndarray = field(init=False)
    col: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.code = np.zeros(self.batch.n, np.int8)
        self.col = np.zeros(self.batch.n, np.int8)
        self._cols = list(self.batch.raw.column_names)

    def mark(self, reason: str, mask: np.ndarray, col: str) -> None:
        m = np.asarray(mask, bool) & (self.code == 0)
        self.code[m] = _CODE[reason]
        self.col[m] = self._cols.index(col)

    @property
    def ok(self) -> np.ndarray:
        return self.code == 0

    def ints(self, col: str, if_null: str | None = None) -> np.ndarray:
        vals, null, bad = to_int(self.batch.raw.column(col))
        self.mark("wrong_type", bad, col)
        if if_null:
            self.mark(if_null, null, col)
        return vals

    def vec(self, col: str, dim: int) -> np.ndarray:
        vals, bad = to_vec(self.batch.raw.column(col), dim)
        self.mark("bad_embedding", bad, col)
        return vals

    def rejects(self) -> pa.Table:
        idx = np.flatnonzero(self.code)
        b = self.batch
        rows = b.raw.take(pa.array(idx)).to_pylist() if len(idx) else []
        return pa.table(
            {
                "table": [b.table] * len(idx),
                "source_file": [b.file] * len(idx),
                "row_number": (b.file_row0 + idx).astype(np.int64),
                "reason": [REJECT_REASONS[c - 1] for c in self.code[idx]],
                "detail": [
                    f"{self._cols[c]}={row.get(self._cols[c])!r}"[:200]
                    for c, row in zip(self.col[idx], rows, strict=True)
                ],
                "row": [json.dumps(r, default=str, sort_keys=True) for r in rows],
            },
            schema=REJECTS_SCHEMA,
        )

    def counts(self) -> dict[str, int]:
        codes, n = np.unique(self.code[self.code > 0], return_counts=True)
        return {REJECT_REASONS[c - 1]: int(k) for c, k in zip(codes, n, strict=True)}


def malformed_rejects(rows: list[Malformed]) -> pa.Table:
    return pa.table(
        {
            "table": [m.table for m in rows],
            "source_file": [m.file for m in rows],
            "row_number": pa.array([m.line for m in rows], pa.int64()),
            "reason": ["malformed_row"] * len(rows),
            "detail": [m.detail for m in rows],
            "row": [json.dumps({"text": m.text}) for m in rows],
        },
        schema=REJECTS_SCHEMA,
    )
