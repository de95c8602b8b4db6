"""Backfills as the UI launches them, from Python: the demo, the benchmark and the
end-to-end tests submit through this, and the daemon runs them.

A *job* backfill (``submit_job_backfill``: the UI's Jobs → hourly_pipeline → Backfill) is
one run per hour with every asset of the hour in it; the instance's run queue lets a
backfill's runs go one at a time, in the order of its hours (infra/dagster.yaml), because
each hour reads the one before. This is the fast way.

An *asset* backfill (``submit_backfill``: Materialize selected over a partition range) of
hours A..B targets exactly A..B of each asset (the declared dependencies name the newest
upstream hour, see assets.partitions) plus the outcomes whose look-ahead lies inside A..B.
It is as correct but slower: Dagster gives each self-dependent asset of an hour a run of
its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.utils import make_new_backfill_id

ROOT = Path(__file__).resolve().parents[1]
DONE = {
    BulkActionStatus.COMPLETED,
    BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
}


def submit_backfill(
    instance: dg.DagsterInstance,
    asset_keys: Sequence[dg.AssetKey],
    partition_names: Sequence[str],
    title: str,
) -> str:
    """Queue an asset backfill of ``partition_names`` over ``asset_keys`` (the same
    request the UI's "Materialize selected" over a partition range makes)."""
    from assets.definitions import defs

    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=defs.resolve_asset_graph(),
        partition_names=list(partition_names),
        asset_selection=list(asset_keys),
        backfill_timestamp=time.time(),
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=title,
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def submit_job_backfill(
    instance: dg.DagsterInstance,
    job_name: str,
    partition_names: Sequence[str],
    title: str,
    tags: dict[str, str] | None = None,
) -> str:
    """Queue a backfill of ``job_name`` over ``partition_names`` (the request the UI's
    job Backfill dialog makes); the daemon submits one run per partition, in order, and
    marks the backfill COMPLETED_SUCCESS or COMPLETED_FAILED once every run has ended."""
    from dagster._core.remote_representation.external_data import (
        partition_set_snap_name_for_job_name,
    )
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    target = WorkspaceFileTarget(paths=[str(ROOT / "workspace.yaml")])
    with _stdout_to_stderr(), WorkspaceProcessContext(instance, target) as process_context:
        workspace = process_context.create_request_context()
        (location,) = workspace.code_locations
        (repo,) = location.get_repositories().values()
        partition_set = repo.get_partition_set(partition_set_snap_name_for_job_name(job_name))
        backfill = PartitionBackfill(
            backfill_id=make_new_backfill_id(),
            partition_set_origin=partition_set.get_remote_origin(),
            status=BulkActionStatus.REQUESTED,
            partition_names=list(partition_names),
            from_failure=False,
            reexecution_steps=None,
            tags=dict(tags or {}),
            backfill_timestamp=time.time(),
            title=title,
        )
        instance.add_backfill(backfill)
    return backfill.backfill_id


@contextmanager
def _stdout_to_stderr():
    """The code server the workspace starts inherits file descriptor 1 and logs its start
    and stop there: send them to stderr, so a caller's stdout (a benchmark's one JSON
    line) holds only what the caller prints."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def wait_for_backfill(
    instance: dg.DagsterInstance, backfill_id: str, timeout_s: float = 3600
) -> BulkActionStatus:
    """Poll until the backfill has finished; returns its final status."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = instance.get_backfill(backfill_id).status
        if status in DONE:
            return status
        time.sleep(2)
    raise TimeoutError(f"backfill {backfill_id} still {status.value} after {timeout_s:.0f} s")


class Daemon:
    """``dagster-daemon run`` over the workspace, in its own process group, for as long as
    the ``with`` block lasts (it runs backfills, sensors and the run queue)."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env, self.log_path = env, log_path

    def __enter__(self) -> Daemon:
        self.log = open(self.log_path, "w")
        exe = Path(sys.executable).parent / "dagster-daemon"
        self.proc = subprocess.Popen(
            [str(exe), "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        return self

    def __exit__(self, *exc) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        finally:
            self.log.close()
