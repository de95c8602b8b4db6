"""Keep freed host memory with the process: glibc's malloc hands large blocks back to the
kernel on free (blocks above its mmap threshold, and a heap top above its trim threshold),
so a training step's multi-megabyte temporaries (the (B, G, L, d) GSU layout and its
gradient are 16 MB each at B = 1024) can come back as fresh pages, one page fault per
4 KiB on first touch. On this project's VMs a fault costs ~2.5 µs: a fresh 16 MB tensor
is ~10 ms. With freed blocks kept (as tcmalloc and jemalloc do by default) a step
reuses the memory of the step before (``bench/RESULTS.md``: 1.50-1.55x the peer
without, 1.6x with). The cost: the process keeps its peak heap, which a trainer needs
again at the next step anyway.

A no-op where the C library is not glibc (macOS, musl): ``keep_freed_memory`` says
whether it applied.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks below this come from the heap and are reused after free (glibc caps it at
# HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit and refuses more).
MMAP_THRESHOLD_BYTES = 32 << 20
# Free heap top kept rather than trimmed back to the kernel.
TRIM_THRESHOLD_BYTES = (1 << 31) - 1


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's malloc to serve blocks up to 32 MiB from the heap and never trim it;
    once per process. -> True where glibc accepted both settings."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
