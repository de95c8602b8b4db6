"""`dagster dev` as a user starts it, for the tests that drive the UI or its GraphQL API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT, free_port

BIN = Path(sys.executable).parent


@contextmanager
def dagster_dev(env: dict[str, str], log_path: Path, timeout_s: float = 120) -> Iterator[int]:
    """Serve the workspace on a free loopback port until the block ends; yields the port."""
    port = free_port()
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    # Its own process group: `dagster dev` stops on SIGINT to the group (it ignores SIGTERM).
    proc = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(log_path.read_text()[-3000:]) from None
                time.sleep(1)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
