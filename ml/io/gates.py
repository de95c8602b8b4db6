"""Quality gates that hold across runs: a blocking check's verdict, kept in the lake beside
the partition it judged, and refused by every later reader.

Dagster's blocking checks stop the downstream steps of the *same* run. A later run (the
next hour of a backfill, a schedule, a CLI call) would read the failed partition as if it
were fine. So each blocking check records its verdict under

    lake/_gates/<the partition's path under lake/>/<check>.json

bound to the version of the partition it saw (a digest of its manifest), and readers of a
published partition call :func:`require_gates`: a failed verdict on the version they are
about to read is an error naming the partition and the check. Re-materializing the
partition with other inputs changes its manifest, so the old verdict no longer applies and
the checks of the new version decide; identical inputs give identical bytes, the same
manifest and so the same (failed) verdict. A partition whose checks never ran (deselected
on purpose) has no verdict and is read.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

from ml.io.store import StorageError, Store

GATES_ROOT = "lake/_gates"


class FailedGateError(StorageError):
    """A partition whose blocking check failed was about to be read."""


def partition_version(manifest: dict[str, Any]) -> str:
    """A digest of a published partition's manifest (it lists every file and its size
    and the figures the partition was built with)."""
    canon = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()[:20]


def gate_dir(rel_dir: str) -> str:
    """Where the verdicts on the partition at ``rel_dir`` (``lake/...``) are kept."""
    head, _, rest = rel_dir.partition("/")
    if head != "lake" or not rest or rest.startswith("_gates"):
        raise ValueError(f"not a lake partition: {rel_dir!r}")
    return posixpath.join(GATES_ROOT, rest)


def record_verdict(store: Store, rel_dir: str, check: str, passed: bool, detail: str = "") -> None:
    """Keep check ``check``'s verdict on the partition as it is published now."""
    man = store.manifest(rel_dir)
    body = {
        "check": check,
        "passed": bool(passed),
        "version": None if man is None else partition_version(man),
        "detail": detail[:2000],
    }
    store.write_bytes(
        posixpath.join(gate_dir(rel_dir), f"{check}.json"),
        json.dumps(body, sort_keys=True, indent=1).encode(),
    )


def failed_verdicts(store: Store, rel_dir: str, manifest: dict[str, Any]) -> list[dict]:
    """The failed verdicts on the partition's current version, by check name."""
    version = partition_version(manifest)
    gdir = gate_dir(rel_dir)
    out = []
    for name in store.list(gdir, suffix=".json"):
        verdict = json.loads(store.read_bytes(posixpath.join(gdir, name)))
        if verdict.get("version") == version and not verdict.get("passed"):
            out.append(verdict)
    return out


def require_gates(store: Store, rel_dir: str, manifest: dict[str, Any], what: str) -> None:
    """Raise :class:`FailedGateError` if a blocking check failed on this version of the
    partition ``what`` (e.g. ``raw_live_events 2026-01-01-05:00``)."""
    failed = failed_verdicts(store, rel_dir, manifest)
    if not failed:
        return
    checks = ", ".join(repr(v["check"]) for v in failed)
    details = "; ".join(f"{v['check']}: {v['detail']}" for v in failed if v.get("detail"))
    raise FailedGateError(
        f"{what} failed its blocking check {checks}"
        f"{' (' + details + ')' if details else ''}; it is not read until it is fixed and "
        f"re-materialized with its checks ({store.url(rel_dir)})"
    )
