"""`dagster dev` as a user runs it: the webserver serves the graph, and backfills launched
through its GraphQL API (the calls the UI makes) are run by the daemon: the hourly
pipeline as a job backfill, one run per hour in order; a model variant's hours."""

import itertools
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ml.io.store import Store
from ml.sim import SimConfig, simulate
from tests.conftest import ROOT
from tests.e2e.dev_server import dagster_dev

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KEYS = ["2026-01-01-00:00", "2026-01-01-01:00", "2026-01-01-02:00"]
BIN = Path(sys.executable).parent


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            out = json.loads(resp.read())
    except urllib.error.HTTPError as e:  # GraphQL errors come back as 500 with a body
        raise AssertionError(f"{e}: {e.read().decode()[:3000]}") from None
    assert "errors" not in out, out
    return out["data"]


def run_backfill(port: int, partitions: list[str], timeout: int = 600, **params) -> str:
    """Launch a partition backfill the way the UI does and wait for its final status.
    ``params``: ``assetSelection`` (an asset backfill) or ``selector`` (a job's)."""
    launched = graphql(
        port,
        """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
             __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {"p": {"partitionNames": partitions, **params}},
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


def assets(*names: str) -> dict:
    return {"assetSelection": [{"path": [a]} for a in names]}


def job(name: str) -> dict:
    repo = {"repositoryLocationName": "livecross", "repositoryName": "__repository__"}
    return {"selector": {"partitionSetName": f"{name}_partition_set", "repositorySelector": repo}}


@pytest.fixture
def dev_server(tmp_path):
    home = Store(str(tmp_path / "home"))
    simulate(SimConfig(hours=3, users=300, seed=9), home.root, progress=False)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((ROOT / "infra" / "dagster.yaml").read_text())
    env = {**os.environ, "LIVECROSS_HOME": home.root, "DAGSTER_HOME": str(dagster_home)}
    with dagster_dev(env, tmp_path / "dev.log") as port:
        yield port, home


def test_ui_serves_the_graph_and_a_job_backfill_runs_each_hour_once_in_order(dev_server):
    port, home = dev_server
    # The webserver answers before its code location has loaded (the UI shows "loading"
    # then): ask until the graph is there.
    deadline = time.time() + 120
    while not (nodes := graphql(port, "{ assetNodes { assetKey { path } } }")["assetNodes"]):
        assert time.time() < deadline, "the code location did not load within 120 s"
        time.sleep(1)
    names = {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert {"raw_live_events", "moment_samples", "live_outcomes", "exposure_sequences"} <= names

    status = run_backfill(port, KEYS, **job("hourly_pipeline"))
    assert status == "COMPLETED_SUCCESS", status
    runs = graphql(
        port,
        """{ runsOrError(filter: {pipelineName: "hourly_pipeline"}) { ... on Runs { results {
             status tags { key value } startTime endTime } } } }""",
    )["runsOrError"]["results"]
    ordered = sorted(runs, key=lambda r: r["startTime"])
    partition = [
        next(t["value"] for t in r["tags"] if t["key"] == "dagster/partition") for r in ordered
    ]
    assert partition == KEYS and {r["status"] for r in runs} == {"SUCCESS"}
    for before, after in itertools.pairwise(ordered):  # one at a time
        assert before["endTime"] <= after["startTime"]
    for key in KEYS:  # every asset of each hour, and nothing that looks past the last hour
        for asset in ("content_catalog", "raw_live_events", "exposure_sequences"):
            assert home.manifest(f"lake/{asset}/{key}") is not None, (asset, key)
    assert not home.exists("lake/live_outcomes")

    # One hour picked on the asset graph (every hourly asset and the outcomes): exactly
    # that hour is rebuilt, the outcomes whose look-ahead is missing are not targeted, and
    # the backfill ends successful.
    # (The models, self-dependent chains, start from the hour before: not picked here; the
    # studies are no hourly assets: each would run a whole study.)
    models = (
        "moment_cross",
        "live_pred",
        "content_ctr",
        "content_pred",
        "ablation",
        "content_study",
    )
    hourly = sorted({n for n in names if not n.startswith(models)})
    status = run_backfill(port, KEYS[-1:], timeout=900, **assets(*hourly))
    assert status == "COMPLETED_SUCCESS", status
    assert not home.exists("lake/live_outcomes")


def test_a_variant_backfill_trains_its_hours_in_order_through_the_daemon(dev_server):
    """Model partitions (hour x variant) picked in a backfill: the daemon runs each hour of
    the variant after the one it resumes from, and every hour passes its progressive check."""
    port, home = dev_server
    env = {**os.environ, "LIVECROSS_HOME": home.root}
    env["DAGSTER_HOME"] = str(Path(home.root).parent / "dagster_home")
    hourly = ("content_catalog,raw_live_events,raw_short_video_events,user_activity,live_exposures,"
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
    status = run_backfill(port, keys, **assets("moment_cross_model", "live_predictions"))
    assert status == "COMPLETED_SUCCESS", status
    first = home.manifest(f"lake/moment_cross_model/{variant}/{KEYS[0]}")
    second = home.manifest(f"lake/moment_cross_model/{variant}/{KEYS[1]}")
    assert first["counters"]["hours"] == 1 and second["counters"]["hours"] == 2
