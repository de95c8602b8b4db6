"""JSON Lines and gzip, fast and byte-deterministic.

Lines are assembled by Arrow string kernels (number → text casts and element-wise joins,
in C++), so a line array's data buffer already *is* the file body; pandas ``to_json`` is
about 5x slower for the same bytes. Fields a type does not use are left out of the line
(the contract allows null or absent). gzip runs deflate on fixed-size chunks in parallel
(pigz-style: each chunk an independent raw deflate stream ending on a byte boundary,
one gzip member, one CRC), so the bytes do not depend on the number of threads.
"""

from __future__ import annotations

import struct
import zlib
from concurrent.futures import Executor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml import schema as S
from ml.sim.events import Events, event_ids

GZIP_LEVEL = 1
GZIP_CHUNK = 1 << 22
# magic, deflate, no flags, mtime 0, xfl 4 (fastest), OS 255 (unknown): no time, no host
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"


def format_lines(ev: Events, prefix: str, type_names: tuple[str, ...]) -> pa.StringArray:
    """One JSON object per event, each ending in a newline, in the order of ``ev``."""
    if len(ev) == 0:
        return pa.array([], pa.string())

    def text(x: np.ndarray) -> pa.Array:
        return pc.cast(pa.array(x), pa.string())

    def names(codes: np.ndarray, values: tuple[str, ...]) -> pa.Array:
        return pa.array(values).take(pa.array(codes.astype(np.int32)))

    parts: list = [
        '{"event_id":"', event_ids(prefix, ev.key),
        '","event_type":"', names(ev.etype, type_names),
        '","user_id":', text(ev.user),
        ',"item_id":', text(ev.item),
        ',"author_id":', text(ev.author),
        ',"event_time_ms":', text(ev.etime),
        ',"report_time_ms":', text(ev.rtime),
        ',"page":"', names(ev.page, S.PAGES), '"',
    ]  # fmt: skip
    for name, values, null in (
        ("watch_ms", ev.watch, ev.watch < 0),
        ("duration_ms", ev.duration, ev.duration < 0),
        ("gift_value", ev.gift, np.isnan(ev.gift)),
    ):
        if null.all():
            continue
        arr = pc.cast(pa.array(values, mask=null), pa.string())
        if name == "gift_value":  # Arrow writes 5.0 as "5"; keep it a JSON float
            arr = pc.if_else(
                pc.match_substring_regex(arr, r"[.eEn]"),
                arr,
                pc.binary_join_element_wise(arr, ".0", ""),
            )
        parts.append(pc.fill_null(pc.binary_join_element_wise(f',"{name}":', arr, ""), ""))
    parts.append("}\n")
    return pc.binary_join_element_wise(*parts, "")


def line_buffer(lines: pa.Array) -> memoryview:
    """The concatenated bytes of a string array without nulls (zero-copy)."""
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    if len(lines) == 0:
        return memoryview(b"")
    dtype = np.int64 if lines.type == pa.large_string() else np.int32
    offsets = np.frombuffer(lines.buffers()[1], dtype=dtype)
    lo, hi = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return memoryview(lines.buffers()[2])[lo:hi]


def gzip_bytes(data, pool: Executor | None = None, level: int = GZIP_LEVEL) -> bytes:
    """A single-member gzip file of ``data``; same bytes for any pool (or none)."""
    view = memoryview(data).cast("B")
    n = len(view)
    chunks = [view[i : i + GZIP_CHUNK] for i in range(0, n, GZIP_CHUNK)] or [view]

    def deflate(i: int) -> bytes:
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        last = i == len(chunks) - 1
        return c.compress(chunks[i]) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    if pool is None or len(chunks) == 1:
        body = [deflate(i) for i in range(len(chunks))]
        crc = zlib.crc32(view)
    else:
        crc_future = pool.submit(zlib.crc32, view)
        body = list(pool.map(deflate, range(len(chunks))))
        crc = crc_future.result()
    return b"".join([_GZIP_HEADER, *body, struct.pack("<II", crc, n & 0xFFFFFFFF)])
