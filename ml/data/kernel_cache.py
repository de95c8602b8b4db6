"""numba's on-disk cache, keyed by the source of every kernel module.

numba invalidates a cached function when its own file changes, but not when a compiled
function it calls — and compiles into itself — lives in another file: after an edit to
``gsu_prune`` or ``gsu_topk.level_of``, ``gsu_scan``'s cached walks would keep running
the old code (and the levels of a fresh table would no longer match the walk's). Every
kernel module imports this one before it defines a kernel, which points numba's cache at
a directory named by a digest of all kernel sources, so any edit starts a fresh cache.
``NUMBA_CACHE_DIR``, when set, is the base that directory goes under.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba

HERE = Path(__file__).resolve().parent
KERNEL_MODULES = (
    "dedup", "gsu_prune", "gsu_scan", "gsu_topk", "jsonscan_kernel", "seqindex", "validate",
)  # fmt: skip


def source_digest(directory: Path = HERE, modules: tuple[str, ...] = KERNEL_MODULES) -> str:
    """16 hex digits of SHA-256 over the kernel modules' names and sources."""
    h = hashlib.sha256()
    for name in modules:
        h.update(name.encode() + b"\0")
        h.update((directory / f"{name}.py").read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("NUMBA_CACHE_DIR") or str(HERE / "__pycache__")
    return Path(base) / f"numba-{source_digest()}"


numba.config.CACHE_DIR = str(cache_dir())
