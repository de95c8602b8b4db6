"""numba's cache must not serve a kernel compiled against an older version of a kernel
it calls from another file (numba itself only watches the caller's own file)."""

import shutil
import subprocess
import sys
from pathlib import Path

import numba

from ml import kernel_cache

ROOT = Path(__file__).resolve().parents[1]
PROBE = "from ml.cross.topk import _bound; print(int(_bound(40000, 0.0)))"


def test_digest_covers_every_kernel_module(tmp_path):
    """Every module that caches a kernel is found without a list, a new one included, and
    an edit to any of them changes the digest; a module without kernels does not count."""
    found = kernel_cache.kernel_modules()
    assert {"cross/gsu_scan.py", "cross/topk.py", "cross/score_levels.py"} <= set(found)
    assert {"ingest/jsonscan_kernel.py", "ingest/validate.py", "ingest/dedup.py"} <= set(found)
    assert "cross/windows.py" in found and "schema.py" not in found
    for rel in found:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"# {rel}\n@nb.njit(cache=True)\n")
    (tmp_path / "plain.py").write_text("x = 1\n")
    assert kernel_cache.kernel_modules(tmp_path) == found
    new = tmp_path / "stage" / "new_kernel.py"
    new.parent.mkdir()
    new.write_text("@nb.njit(nogil=True, cache=True)\n")
    assert "stage/new_kernel.py" in kernel_cache.kernel_modules(tmp_path)
    before = kernel_cache.source_digest(tmp_path)
    assert kernel_cache.source_digest(tmp_path) == before
    (tmp_path / "plain.py").write_text("x = 2\n")
    assert kernel_cache.source_digest(tmp_path) == before
    for rel in kernel_cache.kernel_modules(tmp_path):
        path = tmp_path / rel
        path.write_text(path.read_text() + "x = 1\n")
        assert kernel_cache.source_digest(tmp_path) != before, rel
        before = kernel_cache.source_digest(tmp_path)


def test_every_kernel_module_points_numba_at_the_digest_cache():
    """A kernel module that forgets to import kernel_cache first would cache by its own
    file alone (numba's default), the stale-kernel bug this module exists to prevent."""
    for rel in kernel_cache.kernel_modules():
        source = (kernel_cache.HERE / rel).read_text()
        assert "from ml import kernel_cache" in source, rel


def test_kernels_cache_under_the_digest_directory():
    from ml.cross import gsu_scan  # noqa: F401  (its kernels are defined by now)

    assert str(kernel_cache.cache_dir()) == numba.config.CACHE_DIR
    assert kernel_cache.source_digest() in numba.config.CACHE_DIR


def test_an_edit_to_a_called_kernel_in_another_file_is_not_served_stale(tmp_path):
    """topk._bound calls score_levels.level_of: cache it, edit level_of, run again."""
    shutil.copytree(ROOT / "ml", tmp_path / "ml", ignore=shutil.ignore_patterns("__pycache__"))

    def probe() -> int:
        out = subprocess.run(
            [sys.executable, "-c", PROBE], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return int(out.stdout)

    first = probe()
    assert probe() == first  # served from the cache
    topk = tmp_path / "ml" / "cross" / "score_levels.py"
    source = topk.read_text()
    line = "return np.uint16(max((key >> 16) + 32768, 1))"  # in level_of
    assert source.count(line) == 1
    topk.write_text(source.replace(line, line.replace("32768", "32769")))
    assert probe() == first + 1


def test_an_unwritable_package_caches_under_the_user_cache_dir(tmp_path, monkeypatch):
    """Where the package's __pycache__ cannot hold the digest directory (here a file
    stands in its place, which stops root too), the user's cache directory does."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__pycache__").write_text("not a directory")
    monkeypatch.setattr(kernel_cache, "HERE", package)
    monkeypatch.setattr(kernel_cache, "source_digest", lambda: "d" * 16)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user"))
    got = kernel_cache.cache_dir()
    assert got == tmp_path / "user" / "livecross" / f"numba-{'d' * 16}"
    assert got.is_dir()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "chosen"))
    assert kernel_cache.cache_dir() == tmp_path / "chosen" / f"numba-{'d' * 16}"
