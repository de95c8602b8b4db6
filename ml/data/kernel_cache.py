"""numba's on-disk cache, keyed by the source of every kernel module.

numba invalidates a cached function when its own file changes, but not when a compiled
function it calls — and compiles into itself — lives in another file: after an edit to
``gsu_prune`` or ``gsu_topk.level_of``, ``gsu_scan``'s cached walks would keep running
the old code (and the levels of a fresh table would no longer match the walk's). Every
kernel module imports this one before it defines a kernel, which points numba's cache at
a directory named by a digest of all kernel sources, so any edit starts a fresh cache.
``NUMBA_CACHE_DIR``, when set, is the base that directory goes under; otherwise the
package's ``__pycache__``, or the user's cache directory when the package is read-only
(numba would otherwise fall back, silently, to caches keyed by each file alone).
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
    """The first of the candidate bases where the digest directory can be created."""
    name = f"numba-{source_digest()}"
    if os.environ.get("NUMBA_CACHE_DIR"):
        bases = [Path(os.environ["NUMBA_CACHE_DIR"])]
    else:
        user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        bases = [HERE / "__pycache__", user / "livecross"]
    for base in bases:
        try:
            (base / name).mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(base / name, os.W_OK):
            return base / name
    return bases[0] / name  # nothing writable: numba then compiles without caching


numba.config.CACHE_DIR = str(cache_dir())
