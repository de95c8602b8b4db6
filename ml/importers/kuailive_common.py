"""What the KuaiLive-M3 passes share: the run context (sources, window, spills, counts),
the per-table statistics and the fixed embedding reduction."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from ml import schema as S
from ml.importers.kuailive_source import (
    REJECTS_SCHEMA,
    Batch,
    Malformed,
    Source,
    Verdict,
    malformed_rejects,
    read_batches,
)
from ml.importers.spill import Spill
from ml.io.store import parquet_bytes

# ---- the embedding reduction ---------------------------------------------------------------
# The contract's embeddings are 32-d (schema.EMBED_DIM); the dataset's are 128-d (videos,
# segments) and 64-d (rooms). A fixed Gaussian random projection R (in_dim x 32, entries
# N(0, 1/32), drawn by numpy's PCG64 from seed [PROJECTION_SEED, in_dim]) followed by L2
# normalisation keeps dot products approximately (Johnson-Lindenstrauss) and is the same
# for every run and every machine; a zero vector stays zero.
PROJECTION_SEED = 0x4B4C4D33  # "KLM3"


@lru_cache(maxsize=4)
def projection(in_dim: int) -> np.ndarray:
    g = np.random.default_rng([PROJECTION_SEED, in_dim])
    return g.standard_normal((in_dim, S.EMBED_DIM)) / np.sqrt(S.EMBED_DIM)


def reduce_embedding(x: np.ndarray) -> np.ndarray:
    """[n, d] -> [n, 32] float32: x @ R(d), L2-normalised (zero rows stay zero)."""
    x = np.asarray(x, np.float64)
    return l2_normalize(x @ projection(x.shape[1]) if len(x) else np.zeros((0, S.EMBED_DIM)))


def l2_normalize(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, np.float64)
    norm = np.linalg.norm(y, axis=1, keepdims=True)
    return np.divide(y, norm, out=np.zeros_like(y), where=norm > 0).astype(np.float32)


def fixed_list(x: np.ndarray) -> pa.FixedSizeListArray:
    x = np.asarray(x, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])


def var_list(x: np.ndarray, valid: np.ndarray | None = None) -> pa.ListArray:
    """list<float32> rows of ``x``; null where ``valid`` is False."""
    x = np.asarray(x, np.float32)
    n, d = x.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * d)
    mask = None if valid is None or valid.all() else pa.array(~np.asarray(valid, bool))
    return pa.ListArray.from_arrays(offsets, pa.array(x.ravel()), mask=mask)


# ---- window and statistics ---------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """Report hours [start_ms, end_ms); None = everything."""

    start_ms: int | None = None
    end_ms: int | None = None

    def inside(self, t: np.ndarray) -> np.ndarray:
        if self.start_ms is None:
            return np.ones(len(t), bool)
        return (t >= self.start_ms) & (t < self.end_ms)


@dataclass
class TableStats:
    files: list[str] = field(default_factory=list)
    missing: bool = False
    rows: int = 0
    rejected: Counter = field(default_factory=Counter)
    outside_range: int = 0
    events: Counter = field(default_factory=Counter)
    out_rows: int = 0  # catalog rows / segments written
    note: str = ""

    def to_dict(self) -> dict:
        d: dict = {"files": self.files}
        if self.missing:
            d["missing"] = True
        if self.note:
            d["note"] = self.note
        if not self.missing and not self.note:
            d.update(
                rows=self.rows,
                rejected=dict(sorted(self.rejected.items())),
                outside_range=self.outside_range,
            )
            if self.events:
                d["events"] = dict(sorted(self.events.items()))
            if self.out_rows:
                d["rows_out"] = self.out_rows
        return d


@dataclass
class Context:
    sources: dict[str, Source]
    stats: dict[str, TableStats]
    window: Window
    tmp: str
    batch_rows: int = 1_000_000
    spill_bytes: int = 256 << 20
    progress: bool = True
    warnings: list[str] = field(default_factory=list)
    _rejects: Spill | None = None

    @property
    def rejects(self) -> Spill:
        if self._rejects is None:
            self._rejects = Spill(f"{self.tmp}/rejects", REJECTS_SCHEMA, self.spill_bytes)
        return self._rejects

    def spill(self, name: str, schema: pa.Schema) -> Spill:
        return Spill(f"{self.tmp}/{name}", schema, self.spill_bytes)

    def has(self, name: str) -> bool:
        return name in self.sources

    def scan(self, name: str) -> Iterator[tuple[Batch, Verdict]]:
        """Batches of a table with a fresh verdict each; the caller marks the verdict before
        asking for the next batch, then rejects and counts are recorded here."""
        src, st = self.sources[name], self.stats[name]
        malformed: list[Malformed] = []
        with tqdm(
            total=src.rows_hint(), desc=f"kuailive {name}", unit=" rows", unit_scale=True,
            file=sys.stderr, disable=not self.progress, leave=False,
        ) as bar:  # fmt: skip
            for batch in read_batches(src, self.batch_rows, malformed):
                v = Verdict(batch)
                yield batch, v
                st.rows += batch.n
                st.rejected.update(v.counts())
                if v.code.any():
                    self.rejects.add(name, v.rejects())
                bar.update(batch.n)
        if malformed:
            st.rows += len(malformed)
            st.rejected["malformed_row"] += len(malformed)
            self.rejects.add(name, malformed_rejects(malformed))

    def reject_rows(self, name: str, table: pa.Table) -> None:
        """Rows rejected after their batch was counted (e.g. duplicate segments)."""
        if table.num_rows:
            for r in table.column("reason").to_pylist():
                self.stats[name].rejected[r] += 1
            self.rejects.add(name, table)

    def publish_rejects(self, store, rel_dir: str) -> int:
        """Publish ``<rel_dir>/<table>.parquet`` per table with rejects (replacing old ones)."""
        files, rows = {}, {}
        if self._rejects is not None:
            for name in self._rejects.groups():
                t = self._rejects.read(name)
                files[f"{name}.parquet"] = parquet_bytes(t)
                rows[name] = t.num_rows
            self._rejects.close()
        return store.publish(rel_dir, files, {"rows": rows, "source": "kuailive_m3"})
