"""Coverage-guided fuzzing of the whole ingestion path with atheris (libFuzzer).

Each input becomes one landing hour (its bytes the hour's only file, listed in the sink's
manifest with its line count), ingested strictly and in salvage mode. An exception, or a
line not accounted for (clean + duplicates + quarantined + lost != lines in), is a crash.

    python tests/ingest/fuzz_ingest.py -runs=20000 -max_len=4096   # libFuzzer flags
"""

from __future__ import annotations

import inspect
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import pyarrow as pa

from ml.ingest.jsonl import count_lines
from ml.ingest.landing import CorruptFileError
from ml.ingest.landing_hour import IngestConfig, ingest_hour
from ml.io.store import Store
from tests.landing_helpers import H0, ROOM, event, line, list_in_manifest

# The ingestion stages whose Python code is instrumented for coverage (all of it would
# take minutes: atheris.instrument_all rewrites every function in memory).
INSTRUMENTED = (
    "ml.ingest.jsonl", "ml.ingest.text", "ml.ingest.landing", "ml.ingest.landing_hour",
    "ml.ingest.validate", "ml.ingest.dedup", "ml.ingest.jsonscan",
)  # fmt: skip


def _instrument(modules) -> None:
    """Instrument the plain Python functions of ``modules`` in place (numba dispatchers,
    already compiled, are not functions and are left alone)."""
    for name in modules:
        module = sys.modules[name]
        for obj in vars(module).values():
            if inspect.isfunction(obj) and obj.__module__ == name:
                atheris.instrument_func(obj)


KNOWN = pa.array([ROOM], pa.int64())
ROOT = tempfile.mkdtemp(prefix="fuzz-ingest-")
STORE = Store(ROOT)
NAME = "part-00000.jsonl"


def one_input(data: bytes) -> None:
    STORE.write_bytes(f"landing/live/2026-01-01-00/{NAME}", data)
    lines = count_lines(data)  # what a sink that wrote these bytes would list
    list_in_manifest(STORE, "live", H0, NAME, len(data), lines)
    for cfg in (IngestConfig(), IngestConfig(corrupt_files="quarantine")):
        try:
            res = ingest_hour(STORE, "live", H0, known_items=KNOWN, config=cfg)
        except CorruptFileError:  # bytes that open like gzip: the strict mode's clear error
            if cfg.corrupt_files == "quarantine":
                raise
            continue
        if not res.conserved():
            raise AssertionError(f"not conserved: {res.manifest()}")
        for name in res.clean.schema.names:  # no clean string is invalid text
            if pa.types.is_string(res.clean.schema.field(name).type):
                for v in res.clean.column(name).cast(pa.binary()).to_pylist():
                    if v is not None:
                        v.decode("utf-8")


if __name__ == "__main__":
    # Compile every numba kernel first (one input that reaches each), then instrument the
    # Python code for coverage: numba cannot compile atheris's instrumented bytecode, and
    # compiled kernels are not recompiled.
    one_input(b"\n".join(line(e) for e in (event("a"), event("b", "gift"), b"{bad", b"")))
    _instrument(INSTRUMENTED)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
