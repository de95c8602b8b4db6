"""The published catalog (``content_catalog``) seen from the Cross side: per domain an
id -> row lookup with each row's category, author and content embedding, in the published
table's row order (``emb_row`` in the history and the sequences is such a row).

Ingesting the catalog (validation, quarantine) is ``ml.ingest.catalog``; this is only the
read view the history and the GSUs resolve items against.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ml.io.store import Store


@dataclass
class ItemTable:
    """One catalog table: id -> row, and per-row category / embedding (catalog row order)."""

    ids_sorted: np.ndarray
    rows_sorted: np.ndarray  # row of ids_sorted[i] in the published table
    category: np.ndarray  # int32, by row
    embedding: np.ndarray  # (rows, dim) float32, by row
    author: np.ndarray  # int64, by row

    @classmethod
    def from_table(cls, table: pa.Table) -> ItemTable:
        ids = table.column("item_id").to_numpy()
        order = np.argsort(ids, kind="stable")
        emb = table.column("embedding").combine_chunks()
        dim = emb.type.list_size
        values = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        return cls(
            ids_sorted=ids[order],
            rows_sorted=order.astype(np.int32),
            category=table.column("category").to_numpy().astype(np.int32),
            embedding=values.reshape(len(ids), dim),
            author=table.column("author_id").to_numpy().astype(np.int64),
        )

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Catalog row of each id (int32), -1 where unknown."""
        ids = np.asarray(ids, np.int64)
        if len(self.ids_sorted) == 0:
            return np.full(len(ids), -1, np.int32)
        pos = np.minimum(np.searchsorted(self.ids_sorted, ids), len(self.ids_sorted) - 1)
        return np.where(self.ids_sorted[pos] == ids, self.rows_sorted[pos], -1).astype(np.int32)


@dataclass
class CatalogView:
    short_videos: ItemTable
    rooms: ItemTable
    fingerprint: str  # changes whenever ids, categories or embeddings change

    @classmethod
    def from_tables(cls, short_videos: pa.Table, rooms: pa.Table) -> CatalogView:
        sv, rm = ItemTable.from_table(short_videos), ItemTable.from_table(rooms)
        h = hashlib.sha256()
        for t in (sv, rm):
            for a in (t.ids_sorted, t.rows_sorted, t.category, t.embedding):
                h.update(np.ascontiguousarray(a).tobytes())
        return cls(sv, rm, h.hexdigest()[:16])


CATALOG_COLUMNS = ["item_id", "author_id", "category", "embedding"]


def read_catalog(store: Store, rel_dir: str) -> CatalogView:
    """The published catalog (``content_catalog``) as lookup tables."""
    if store.manifest(rel_dir) is None:
        raise FileNotFoundError(f"{store.url(rel_dir)} is not published")
    return CatalogView.from_tables(
        store.read_parquet(f"{rel_dir}/short_videos.parquet", CATALOG_COLUMNS),
        store.read_parquet(f"{rel_dir}/rooms.parquet", CATALOG_COLUMNS),
    )
