"""`dagster dev` as a user runs it: the webserver serves the graph, and a partition
backfill launched through its GraphQL API is run by the daemon, hour after hour."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ml.io.store import Store
from ml.sim import SimConfig, simulate
from tests.conftest import ROOT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KEYS = ["2026-01-01-00:00", "2026-01-01-01:00", "2026-01-01-02:00"]
BIN = Path(sys.executable).parent


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())
    assert "errors" not in out, out
    return out["data"]


def run_backfill(port: int, partitions: list[str], assets: list[str], timeout: int = 400) -> str:
    """Launch a partition backfill the way the UI does and wait for its final status."""
    launched = graphql(
        port,
        """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
             __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {"p": {"partitionNames": partitions, "assetSelection": [{"path": [a]} for a in assets]}},
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline, status = time.time() + timeout, None
    while time.time() < deadline:
        status = graphql(
            port,
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }",
            {"id": launched["backfillId"]},
        )["partitionBackfillOrError"]["status"]
        if status in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "CANCELED", "COMPLETED_FAILED"):
            return status
        time.sleep(3)
    return status


@pytest.fixture
def dev_server(tmp_path):
    home = Store(str(tmp_path / "home"))
    simulate(SimConfig(hours=3, users=300, seed=9), home.root, progress=False)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((ROOT / "infra" / "dagster.yaml").read_text())
    env = {**os.environ, "LIVECROSS_HOME": home.root, "DAGSTER_HOME": str(dagster_home)}
    r = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "--select", "content_catalog", "-m", "assets.definitions"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    port = free_port()
    log = open(tmp_path / "dev.log", "w")  # noqa: SIM115 - closed at teardown
    # Its own process group: `dagster dev` stops on SIGINT to the group (it ignores SIGTERM).
    proc = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError((tmp_path / "dev.log").read_text()[-3000:]) from None
                time.sleep(1)
        yield port, home
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_ui_serves_the_graph_and_runs_a_backfill(dev_server):
    port, home = dev_server
    nodes = graphql(port, "{ assetNodes { assetKey { path } } }")["assetNodes"]
    names = {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert {"raw_live_events", "moment_samples", "live_outcomes", "exposure_sequences"} <= names

    status = run_backfill(port, KEYS, ["raw_live_events", "raw_short_video_events"])
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    for key in KEYS:  # each hour published; the later ones deduplicated against the earlier
        for asset in ("raw_live_events", "raw_short_video_events"):
            assert home.manifest(f"lake/{asset}/{key}")["clean"] > 0


def test_a_variant_backfill_trains_its_hours_in_order_through_the_daemon(dev_server):
    """Model partitions (hour x variant) picked in a backfill: the daemon runs each hour of
    the variant after the one it resumes from, and every hour passes its progressive check."""
    port, home = dev_server
    env = {**os.environ, "LIVECROSS_HOME": home.root}
    env["DAGSTER_HOME"] = str(Path(home.root).parent / "dagster_home")
    hourly = ("raw_live_events,raw_short_video_events,user_activity,live_exposures,"
              "moment_samples,fast_samples,slow_samples,live_segments,user_history,exposure_sequences")  # fmt: skip
    for key in KEYS[:2]:
        r = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "--select", hourly, "--partition", key,
             "-m", "assets.definitions"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
    variant = "no_cross-s1"
    keys = [f"{k}|{variant}" for k in reversed(KEYS[:2])]  # picked newest first
    status = run_backfill(port, keys, ["moment_cross_model", "live_predictions"])
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    first = home.manifest(f"lake/moment_cross_model/{variant}/{KEYS[0]}")
    second = home.manifest(f"lake/moment_cross_model/{variant}/{KEYS[1]}")
    assert first["counters"]["hours"] == 1 and second["counters"]["hours"] == 2
