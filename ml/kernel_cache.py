"""numba's on-disk cache, keyed by the source of every kernel module.

numba invalidates a cached function when its own file changes, but not when a compiled
function it calls — and compiles into itself — lives in another file: after an edit to
``cross.topk`` or ``cross.score_levels.level_of``, ``cross.gsu_scan``'s cached walks would
keep running the old code (and the levels of a fresh table would no longer match the
walk's). Every kernel module imports this one before it defines a kernel, which points
numba's cache at a directory named by a digest of all kernel sources, so any edit starts a
fresh cache. The kernel modules are found, not listed: every module under ``ml/`` whose
source asks numba for ``cache=True`` (a hand-kept list would miss the next one).
``NUMBA_CACHE_DIR``, when set, is the base that directory goes under; otherwise the
package's ``__pycache__``, or the user's cache directory when the package is read-only
(numba would otherwise fall back, silently, to caches keyed by each file alone).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba

HERE = Path(__file__).resolve().parent  # the ml package
CACHED_KERNEL = b"cache=True"


def kernel_modules(package: Path = HERE) -> tuple[str, ...]:
    """Paths (relative to ``package``, sorted) of every module that caches a numba kernel."""
    found = []
    for path in package.rglob("*.py"):
        if "__pycache__" not in path.parts and CACHED_KERNEL in path.read_bytes():
            found.append(path.relative_to(package).as_posix())
    return tuple(sorted(m for m in found if m != Path(__file__).name))


def source_digest(package: Path = HERE) -> str:
    """16 hex digits of SHA-256 over the kernel modules' paths and sources."""
    h = hashlib.sha256()
    for rel in kernel_modules(package):
        h.update(rel.encode() + b"\0")
        h.update((package / rel).read_bytes())
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
