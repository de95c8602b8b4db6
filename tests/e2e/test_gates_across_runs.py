"""The operator's scenario, end to end through the daemon: a backfill of the hourly
pipeline over hours of which one is poisoned (half of its live lines quarantined). Its
blocking check fails in its own run, and no later run consumes it: every later hour that
reads it fails naming it and the check, nothing downstream of it is green. Once the landing
hour is fixed, a backfill of the affected hours builds them all."""

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from assets.backfill import Daemon, submit_job_backfill, wait_for_backfill
from assets.definitions import HOURLY
from assets.lake import RAW_LIVE
from ml.hours import HOUR_MS, landing_dir, parse_hour, partition_key
from ml.io.store import Store
from ml.sim import SimConfig, simulate
from tests.conftest import ROOT
from tests.landing_helpers import write_landing

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
START = "2026-01-01-00:00"
HOURS, BAD = 4, 1
KEYS = [partition_key(parse_hour(START) + i * HOUR_MS) for i in range(HOURS)]
BAD_KEY = KEYS[BAD]
HOURLY_KEYS = [k for a in HOURLY for k in a.keys]
# What does not read raw live events of the bad hour, directly or through a chain.
INDEPENDENT = {"content_catalog", "raw_short_video_events"}
POISON = "bad.jsonl"


def _materialized(instance: dg.DagsterInstance) -> dict[str, set[str]]:
    return {k.to_user_string(): set(instance.get_materialized_partitions(k)) for k in HOURLY_KEYS}


def _green_checks_downstream(instance: dg.DagsterInstance) -> list[str]:
    """Passed checks, in the runs of the bad hour and later, on assets that read it."""
    green = []
    for run in instance.get_runs():
        if run.tags.get("dagster/partition", "") < BAD_KEY:
            continue
        for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            data = e.dagster_event.event_specific_data
            asset = data.asset_key.to_user_string()
            if data.passed and asset not in INDEPENDENT | {RAW_LIVE}:
                green.append(f"{asset}.{data.check_name} ({run.tags['dagster/partition']})")
    return green


def _failure_messages(instance: dg.DagsterInstance) -> list[str]:
    out = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])):
        for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            out.append(e.dagster_event.step_failure_data.error.message)
    return out


@pytest.fixture
def world(tmp_path, monkeypatch):
    home = Store(str(tmp_path / "home"))
    simulate(SimConfig(hours=HOURS, users=300, seed=5), home.root, progress=False)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text((ROOT / "infra" / "dagster.yaml").read_text())
    env = {
        **os.environ,
        "LIVECROSS_HOME": home.root,
        "DAGSTER_HOME": str(dagster_home),
        "LIVECROSS_START": START,
        # one process per run: an hour of a 300-user world is mostly per-step overhead
        "LIVECROSS_EXECUTOR": "in_process",
    }
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    return home, dagster_home, env


def _expected_after_failure(done: dict[str, set[str]]) -> None:
    for asset, keys in done.items():
        if asset in INDEPENDENT:
            assert keys == set(KEYS), asset
        else:
            want = set(KEYS[:BAD]) | ({BAD_KEY} if asset == RAW_LIVE else set())
            assert keys == want, asset


def test_a_failed_gate_is_never_consumed_by_later_runs(world, tmp_path):
    home, _, env = world
    bad_dir = f"landing/live/{landing_dir(parse_hour(BAD_KEY))}"
    # As many garbage lines as good ones: the quarantine rate is far above its limit.
    n_good = sum(json.loads(home.read_bytes(f"{bad_dir}/_SUCCESS"))["lines"].values())
    write_landing(home, "live", parse_hour(BAD_KEY), [b"{not json"] * n_good, name=POISON)

    with Daemon(env, Path(tmp_path) / "daemon.log"), dg.DagsterInstance.get() as instance:
        bid = submit_job_backfill(instance, "hourly_pipeline", KEYS, "poisoned hour")
        assert wait_for_backfill(instance, bid, timeout_s=900).value == "COMPLETED_FAILED"
        # The bad hour's raw events were published, and their blocking check failed ...
        gate = json.loads(home.read_bytes(f"lake/_gates/{RAW_LIVE}/{BAD_KEY}/quarantine_rate.json"))
        assert gate["passed"] is False and "quarantine_rate=0.5" in gate["detail"]
        # ... nothing that reads them was built, in that run or in the later hours' runs,
        # and those later runs failed naming the partition and the failed check.
        _expected_after_failure(_materialized(instance))
        assert _green_checks_downstream(instance) == []
        messages = _failure_messages(instance)
        named = [m for m in messages if f"{RAW_LIVE} {BAD_KEY}" in m and "quarantine_rate" in m]
        assert named, messages

        # The sink redelivers the hour without the garbage: re-run the affected hours.
        home.delete(f"{bad_dir}/{POISON}")
        man = json.loads(home.read_bytes(f"{bad_dir}/_SUCCESS"))
        del man["files"][POISON], man["lines"][POISON]
        home.write_bytes(f"{bad_dir}/_SUCCESS", json.dumps(man).encode())
        bid = submit_job_backfill(instance, "hourly_pipeline", KEYS[BAD:], "after the fix")
        assert wait_for_backfill(instance, bid, timeout_s=900).value == "COMPLETED_SUCCESS"
        for asset, keys in _materialized(instance).items():
            assert keys == set(KEYS), asset
        gate = json.loads(home.read_bytes(f"lake/_gates/{RAW_LIVE}/{BAD_KEY}/quarantine_rate.json"))
        assert gate["passed"] is True
