"""Bounded-memory grouping of a stream of Arrow tables by key, spilled to local disk.

Rows are buffered per key; when the buffer holds ``max_bytes`` bytes it is written as ONE
Arrow IPC file (lz4), one record batch per key, so the number of files grows with the
number of flushes, not with keys x flushes. ``read(key)`` gathers a key's batches from
every file (memory-mapped) plus what is still buffered, in the order they were added.
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict

import pyarrow as pa

_IPC = pa.ipc.IpcWriteOptions(compression="lz4")


class Spill:
    def __init__(self, directory: str, schema: pa.Schema, max_bytes: int = 256 << 20):
        self.dir = directory
        self.schema = schema
        self.max_bytes = max(1, int(max_bytes))
        os.makedirs(directory, exist_ok=True)
        self._buf: dict[str, list[pa.Table]] = defaultdict(list)
        self._buffered = 0
        self._index: dict[str, list[tuple[int, int]]] = defaultdict(list)  # key -> (file, batch)
        self._files: list[str] = []
        self._readers: dict[int, pa.ipc.RecordBatchFileReader] = {}
        self.rows: dict[str, int] = defaultdict(int)

    def add(self, key: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = table.select(self.schema.names).cast(self.schema)
        self._buf[key].append(table)
        self._buffered += table.nbytes
        self.rows[key] += table.num_rows
        if self._buffered >= self.max_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        fi = len(self._files)
        path = os.path.join(self.dir, f"spill-{fi:06d}.arrow")
        with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, self.schema, options=_IPC) as w:
            for bi, key in enumerate(sorted(self._buf)):
                # buffered keys hold >= 1 row, so the combined table is exactly one batch
                w.write_batch(pa.concat_tables(self._buf[key]).combine_chunks().to_batches()[0])
                self._index[key].append((fi, bi))
        self._files.append(path)
        self._buf.clear()
        self._buffered = 0

    def groups(self) -> list[str]:
        return sorted(k for k, n in self.rows.items() if n)

    def read(self, key: str) -> pa.Table:
        parts = []
        for fi, bi in self._index.get(key, []):
            if fi not in self._readers:
                self._readers[fi] = pa.ipc.open_file(pa.memory_map(self._files[fi], "r"))
            parts.append(pa.Table.from_batches([self._readers[fi].get_batch(bi)], self.schema))
        parts.extend(self._buf.get(key, []))
        if not parts:
            return self.schema.empty_table()
        return pa.concat_tables(parts)

    def close(self) -> None:
        self._readers.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
