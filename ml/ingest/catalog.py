"""Catalog ingestion: authors, short videos and live rooms from ``landing/catalog/``.

Columns are checked and cast to the contract's types (a missing or uncastable column is
one clear error naming it); rows that break a rule go to quarantine with a reason, in
the same quarantine table as events (line_number = 1-based row number, raw_line = the
row as JSON).

The catalog of hour H is the catalog *as of the end of H*: the landing export is the
platform's latest full dump, and a short video published, or a room started, at or after
H's end is not in it yet (counted as ``not_yet``); a room still live then has no end.
So catalog[H] is the same bytes whenever it is built, as long as the export only grows,
and an item that appears in hour H is known in H. Rows in = clean + quarantined + not yet,
per table.
"""

from __future__ import annotations

import io
import json
import posixpath
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml import schema as S
from ml.hours import partition_key
from ml.ingest.landing import CorruptFileError, LandingHourNotReadyError, MissingLandingHourError
from ml.io.store import StorageError, Store

CATALOG_DIR = "landing/catalog"
# Order matters: items are checked against the clean authors.
TABLE_ORDER = ("authors", "short_videos", "rooms")
_KEY = {"authors": "author_id", "short_videos": "item_id", "rooms": "item_id"}
# When a row comes into existence (authors have no such time: all of them are listed).
_BORN = {"short_videos": "publish_time_ms", "rooms": "start_ms"}


class CatalogSchemaError(StorageError):
    """A catalog file lacks a column or holds one of an uncastable type."""


@dataclass
class CatalogResult:
    tables: dict[str, pa.Table]
    quarantine: pa.Table
    rows_in: dict[str, int]
    not_yet: dict[str, int]  # rows born at or after as_of_ms
    as_of_ms: int | None = None

    def conserved(self) -> bool:
        files = self.quarantine.column("source_file").to_pylist()
        return all(
            self.rows_in[n] == self.tables[n].num_rows + files.count(_path(n)) + self.not_yet[n]
            for n in TABLE_ORDER
        )

    def manifest(self) -> dict:
        reasons = self.quarantine.column("reason").to_pylist()
        return {
            "as_of_ms": self.as_of_ms,
            "rows_in": self.rows_in,
            "not_yet": self.not_yet,
            "rows": {n: t.num_rows for n, t in self.tables.items()},
            "quarantined": len(reasons),
            "reasons": {r: reasons.count(r) for r in sorted(set(reasons))},
        }


def _path(name: str) -> str:
    return posixpath.join(CATALOG_DIR, f"{name}.parquet")


def read_catalog_file(store: Store, name: str) -> pa.Table:
    rel = _path(name)
    if not store.exists(rel):
        raise MissingLandingHourError(f"missing catalog table {store.url(rel)}")
    try:
        # Only the contract's columns: importers may add wide extras (full-size embeddings).
        data = store.read_bytes(rel)
        present = set(pq.read_schema(io.BytesIO(data)).names)
        wanted = [n for n in S.CATALOG_TABLES[name].names if n in present]
        return pq.read_table(io.BytesIO(data), columns=wanted)
    except (pa.ArrowInvalid, OSError) as e:
        raise CorruptFileError(store.url(rel), str(e)) from e
    except StorageError as e:
        if "corrupt Parquet" in str(e):
            raise CorruptFileError(store.url(rel), str(e).split(": ", 1)[-1]) from e
        raise


def conform(table: pa.Table, target: pa.Schema, name: str) -> tuple[pa.Table, np.ndarray]:
    """Select and cast the contract's columns; returns (table, rows with a bad embedding)."""
    missing = [f.name for f in target if f.name not in table.column_names]
    if missing:
        raise CatalogSchemaError(
            f"catalog table {name!r} ({_path(name)}) lacks column(s) {missing}"
        )
    bad_embedding = np.zeros(table.num_rows, bool)
    cols = []
    for f in target:
        col = table.column(f.name)
        if pa.types.is_fixed_size_list(f.type) and not pa.types.is_fixed_size_list(col.type):
            # Variable-length lists: rows of the wrong length are quarantined, not fatal.
            lengths = pc.fill_null(pc.list_value_length(col), -1).to_numpy(zero_copy_only=False)
            wrong = lengths != f.type.list_size
            bad_embedding |= wrong
            fill = pa.scalar([0.0] * f.type.list_size, pa.list_(pa.float32()))
            col = pc.if_else(pa.array(wrong), fill, col.cast(pa.list_(pa.float32())))
        cols.append(cast_column(col, f, f"catalog table {name!r} ({_path(name)})"))
    return pa.table(cols, schema=target), bad_embedding


def cast_column(col, f: pa.Field, table: str, error: type = CatalogSchemaError):
    """``col`` cast to ``f``'s type, or one ``error`` naming the table, column and types."""
    try:
        return col.cast(f.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise error(
            f"{table}: column {f.name!r} of type {col.type} cannot be read as {f.type}: {e}"
        ) from e


def check_export_covers(store: Store, as_of_ms: int) -> None:
    """Fail unless the catalog export is at least as new as ``as_of_ms``: the sink's
    ``_SUCCESS`` manifest names the time it was exported as of (``as_of_ms``); an export
    without one is a complete historical dump and covers every hour."""
    man = store.manifest(CATALOG_DIR)
    exported = None if man is None else man.get("as_of_ms")
    if exported is not None and int(exported) < as_of_ms:
        raise LandingHourNotReadyError(
            f"the catalog export {store.url(CATALOG_DIR)} is as of {partition_key(int(exported))}"
            f" (exclusive); the catalog of the hour ending {partition_key(as_of_ms)} needs a "
            "newer export"
        )


def _born_later(name: str, table: pa.Table, as_of_ms: int | None) -> np.ndarray:
    if as_of_ms is None or name not in _BORN:
        return np.zeros(table.num_rows, bool)
    born = pc.fill_null(table.column(_BORN[name]), np.iinfo(np.int64).min)
    return born.to_numpy(zero_copy_only=False) >= as_of_ms


def _as_of(name: str, table: pa.Table, as_of_ms: int | None) -> pa.Table:
    """A room that had not ended by ``as_of_ms`` has no end yet."""
    if as_of_ms is None or name != "rooms":
        return table
    end = table.column("end_ms")
    ended = pc.fill_null(pc.less(end, as_of_ms), False)
    i = table.schema.get_field_index("end_ms")
    return table.set_column(i, "end_ms", pc.if_else(ended, end, pa.nulls(len(end), pa.int64())))


def ingest_catalog(store: Store, as_of_ms: int | None = None) -> CatalogResult:
    """The landing catalog as of ``as_of_ms`` (exclusive; None: every row)."""
    if as_of_ms is not None:
        check_export_covers(store, as_of_ms)
    tables: dict[str, pa.Table] = {}
    rows_in: dict[str, int] = {}
    not_yet: dict[str, int] = {}
    quarantined: list[tuple[str, int, str, str, str | None, bytes]] = []
    for name in TABLE_ORDER:
        raw = read_catalog_file(store, name)
        rows_in[name] = raw.num_rows
        table, bad_embedding = conform(raw, S.CATALOG_TABLES[name], name)
        now = np.flatnonzero(~_born_later(name, table, as_of_ms))
        not_yet[name] = raw.num_rows - len(now)
        if not_yet[name]:
            raw, table, bad_embedding = raw.take(now), table.take(now), bad_embedding[now]
        table = _as_of(name, table, as_of_ms)
        reasons = _row_reasons(name, table, bad_embedding, tables.get("authors"))
        bad = np.flatnonzero(reasons != "")
        if len(bad):
            rows = raw.take(pa.array(bad)).to_pylist()
            key = _KEY[name]
            for i, row in zip(bad, rows, strict=True):
                quarantined.append(
                    (
                        _path(name),
                        int(now[i]) + 1,
                        str(reasons[i]),
                        f"{name} row {int(now[i]) + 1}: {reasons[i]}",
                        None if row.get(key) is None else str(row.get(key)),
                        json.dumps(row, default=str, sort_keys=True).encode(),
                    )
                )
        tables[name] = table.filter(pa.array(reasons == "")).combine_chunks()
    cols = list(zip(*quarantined, strict=True)) if quarantined else [[]] * 6
    q = pa.table(
        dict(zip(S.QUARANTINE_SCHEMA.names, cols, strict=True)), schema=S.QUARANTINE_SCHEMA
    )
    return CatalogResult(tables, q, rows_in, not_yet, as_of_ms)


def _row_reasons(
    name: str, t: pa.Table, bad_embedding: np.ndarray, authors: pa.Table | None
) -> np.ndarray:
    n = t.num_rows
    reasons = np.full(n, "", dtype=object)

    def mark(reason: str, mask) -> None:
        mask = np.asarray(mask, bool)
        reasons[mask & (reasons == "")] = reason

    def arr(col: str, fill):
        return pc.fill_null(t.column(col), fill).to_numpy(zero_copy_only=False)

    key = _KEY[name]
    id_cols = [key] if name == "authors" else [key, "author_id"]
    mark(
        "missing_id",
        np.any([pc.is_null(t.column(c)).to_numpy(zero_copy_only=False) for c in id_cols], axis=0),
    )
    keys = arr(key, -1)
    first = np.zeros(n, bool)
    first[np.unique(keys, return_index=True)[1]] = True
    mark("duplicate_id", ~first)
    if authors is not None:
        known = pc.is_in(t.column("author_id"), value_set=authors.column("author_id"))
        mark("unknown_author", ~pc.fill_null(known, False).to_numpy(zero_copy_only=False))
    if name == "short_videos":
        dur = arr("duration_ms", 0)
        mark("negative_value", dur < 0)
        mark("absurd_value", (dur == 0) | (dur > S.MAX_DURATION_MS))
    if name == "rooms":
        start, end = arr("start_ms", -1), t.column("end_ms")
        mark("bad_time_range", start < S.MIN_VALID_TIME_MS)
        ends = pc.fill_null(end, np.iinfo(np.int64).max).to_numpy(zero_copy_only=False)
        mark("bad_time_range", ends < start)
    if name == "authors":
        q = arr("quality", np.nan)
        mark("absurd_value", ~np.isfinite(q))
        mark(
            "absurd_value",
            ~np.isin(t.column("author_type").to_numpy(zero_copy_only=False), S.AUTHOR_TYPES),
        )
    if "embedding" in t.column_names:
        emb = t.column("embedding")
        nulls = pc.is_null(emb).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(pc.fill_null(emb, pa.scalar([0.0] * emb.type.list_size, emb.type)))
        width = emb.type.list_size  # explicit: an empty table has no -1 to infer
        finite = np.isfinite(flat.to_numpy(zero_copy_only=False).reshape(n, width)).all(axis=1)
        mark("bad_embedding", bad_embedding | nulls | ~finite)
    return reasons


# Which catalog table holds the items a domain's events refer to.
ITEMS_TABLE = {S.LIVE: "rooms", S.SHORT_VIDEO: "short_videos"}


def catalog_item_ids(lake: Store, catalog_dir: str, domain: str) -> pa.Array:
    """Item ids the domain's events may refer to, from the published catalog."""
    name = f"{catalog_dir}/{ITEMS_TABLE[domain]}.parquet"
    return lake.read_parquet(name, columns=["item_id"]).column("item_id").combine_chunks()


def catalog_id_columns(lake: Store, catalog_dir: str) -> dict[str, pa.ChunkedArray]:
    """The key column of each published catalog table, named ``<table>_<key>`` (the
    catalog check's uniqueness and non-null rules read these)."""
    return {
        f"{t}_{k}": lake.read_parquet(f"{catalog_dir}/{t}.parquet", columns=[k]).column(k)
        for t, k in _KEY.items()
    }


def catalog_changes(lake: Store, previous_dir: str | None, tables: dict[str, pa.Table]) -> dict:
    """Rows of ``tables`` new since the published catalog at ``previous_dir``, and rows of
    it they no longer hold, per table by its key. ``previous_dir`` None: the first hour
    (every row is new); a previous catalog that is not published: -1 (nothing to compare)."""
    new, vanished = {}, {}
    for name, table in tables.items():
        key = _KEY[name]
        if previous_dir is None or lake.manifest(previous_dir) is None:
            new[name] = table.num_rows if previous_dir is None else -1
            vanished[name] = 0 if previous_dir is None else -1
            continue
        old = lake.read_parquet(f"{previous_dir}/{name}.parquet", [key]).column(key)
        ids = table.column(key)
        new[name] = int(pc.sum(pc.invert(pc.is_in(ids, value_set=old))).as_py() or 0)
        vanished[name] = int(pc.sum(pc.invert(pc.is_in(old, value_set=ids))).as_py() or 0)
    return {"new": new, "vanished": vanished}
