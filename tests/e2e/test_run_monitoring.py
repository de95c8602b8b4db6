"""Crashed runs do not hold the queue: under `dagster-daemon run` with infra/dagster.yaml,
a run whose worker is SIGKILLed is failed (by its code server, which watches the worker
process, or by the run monitoring daemon's health check of the run launcher,
resources.run_launcher, whichever sees it first) and retried once; a run orphaned together
with its code server (a reboot, `kill -9` of the process group), and an in-process CLI run
(`dagster job execute`) that is SIGKILLed, are failed by the monitoring daemon's health
check well before any runtime limit.

The runs are of `napping`, a job in this file (the daemon loads this module as a code
location): its one op sleeps, in the run worker's own process (in-process executor, so
that the worker is the only process to kill), except in an automatic retry, which returns
at once. The project's jobs would need a simulated lake and minutes to reach a step."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEventType

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = "run_monitoring_test"


@dg.op
def nap(context: dg.OpExecutionContext) -> None:
    if "dagster/retry_number" not in context.run.tags:
        time.sleep(300)


@dg.job(executor_def=dg.in_process_executor)
def napping():
    nap()


defs = dg.Definitions(jobs=[napping])

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def wait_for(what: str, predicate, timeout: float, log: Path):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what}\n{log.read_text()[-4000:]}"
    )


@pytest.fixture
def daemon(tmp_path):
    """`dagster-daemon run` on a fresh instance; yields (instance, launch, log path)."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    config = yaml.safe_load((ROOT / "infra" / "dagster.yaml").read_text())
    config["run_monitoring"]["poll_interval_seconds"] = 2  # the same keys, a test's pace
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_module": {
                            "module_name": "tests.e2e.test_run_monitoring",
                            "working_directory": str(ROOT),
                            "location_name": LOCATION,
                        }
                    }
                ]
            }
        )
    )
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    log_path = tmp_path / "daemon.log"

    def launch(tags: dict) -> str:
        run_id = str(uuid.uuid4())
        r = subprocess.run(
            [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-l", LOCATION,
             "-j", "napping", "--run-id", run_id, "--tags", json.dumps(tags)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        return run_id

    # Opened first, it creates the SQLite storage: the daemon and the CLI creating it at
    # once can stamp its schema twice, and then neither opens it.
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
        log = open(log_path, "w")  # noqa: SIM115 - closed at teardown
        # Its own process group (the code server and run workers join it): SIGINT to the
        # group stops them all, SIGKILL to it is the fallback.
        proc = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            yield instance, launch, log_path
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
            with contextlib.suppress(ProcessLookupError):  # a code server or worker left
                os.killpg(proc.pid, signal.SIGKILL)
            log.close()


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The run worker's pid once its step is under way, from the worker's own engine event."""
    logs = instance.all_logs(run_id)
    if not any(e.dagster_event_type == DagsterEventType.STEP_START for e in logs):
        return None
    for e in logs:
        m = re.fullmatch(r"Started process for run \(pid: (\d+)\)\.", e.message or "")
        if m:
            return int(m.group(1))
    return None


def ps(field: str, pid: int) -> str:
    return subprocess.run(
        ["ps", "-o", f"{field}=", "-p", str(pid)], capture_output=True, text=True, check=True
    ).stdout


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def test_a_killed_run_worker_fails_its_run_and_is_retried_once(daemon):
    instance, launch, log = daemon
    run_id = launch({})
    pid = wait_for("the run's step to start", lambda: worker_pid(instance, run_id), 120, log)
    assert status(instance, run_id) == dg.DagsterRunStatus.STARTED
    os.kill(pid, signal.SIGKILL)

    wait_for(
        "the run to fail",
        lambda: status(instance, run_id) == dg.DagsterRunStatus.FAILURE,
        60,
        log,
    )
    messages = [e.message or "" for e in instance.all_logs(run_id)]
    assert any(
        "signal 9 (SIGKILL)" in m or f"The run's process (pid {pid}) no longer exists" in m
        for m in messages
    ), messages

    def retry():
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
        return runs[0] if runs and runs[0].is_finished else None

    child = wait_for("the retry to finish", retry, 90, log)
    assert child.tags["dagster/retry_number"] == "1"
    assert child.status == dg.DagsterRunStatus.SUCCESS


def test_a_run_orphaned_with_its_code_server_is_failed_by_run_monitoring(daemon):
    """Nothing but the monitoring daemon is left to notice the dead worker: the launcher's
    health check fails the run within a poll, long before the run's own runtime limit."""
    instance, launch, log = daemon
    # No retry: that the retry runs is the first test's business.
    run_id = launch({"dagster/max_runtime": "600", "dagster/max_retries": "0"})
    pid = wait_for("the run's step to start", lambda: worker_pid(instance, run_id), 120, log)
    code_server = int(ps("ppid", pid))
    assert "dagster api grpc" in ps("args", code_server)
    os.kill(code_server, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)

    wait_for(
        "run monitoring to fail the run",
        lambda: status(instance, run_id) == dg.DagsterRunStatus.FAILURE,
        60,
        log,
    )
    messages = [e.message or "" for e in instance.all_logs(run_id)]
    assert any(f"The run's process (pid {pid}) no longer exists" in m for m in messages), messages
    assert not any("SIGKILL" in m for m in messages), messages  # no code server saw the crash
    assert not any("maximum runtime" in m for m in messages), messages


def test_a_killed_cli_run_is_failed_by_run_monitoring(daemon):
    """`dagster job execute` runs in the CLI's own process, with no code server to watch it:
    SIGKILLed, its run would hold a slot until max_runtime_seconds but for the launcher's
    health check."""
    instance, _, log = daemon
    marker = str(uuid.uuid4())
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory}
    tags = {"test/marker": marker, "dagster/max_retries": "0"}
    cli = subprocess.Popen(
        [str(BIN / "dagster"), "job", "execute", "-f", __file__, "-j", "napping",
         "--tags", json.dumps(tags)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:

        def started_run():
            runs = instance.get_runs(dg.RunsFilter(tags={"test/marker": marker}))
            if not runs:
                return None
            logs = instance.all_logs(runs[0].run_id)
            step = any(e.dagster_event_type == DagsterEventType.STEP_START for e in logs)
            return runs[0].run_id if step else None

        run_id = wait_for("the CLI run's step to start", started_run, 120, log)
        assert status(instance, run_id) == dg.DagsterRunStatus.STARTED
        run_start = next(
            e
            for e in instance.all_logs(run_id)
            if e.dagster_event_type == DagsterEventType.RUN_START
        )
        assert (
            run_start.dagster_event.pid == cli.pid
        )  # in-process: the CLI process is the run's process
        killed_at = time.time()
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait(timeout=10)

        wait_for(
            "run monitoring to fail the CLI run",
            lambda: status(instance, run_id) == dg.DagsterRunStatus.FAILURE,
            60,
            log,
        )
        assert time.time() - killed_at < 60
        messages = [e.message or "" for e in instance.all_logs(run_id)]
        assert any(f"The run's process (pid {cli.pid}) no longer exists" in m for m in messages), (
            messages
        )
        assert not any("maximum runtime" in m for m in messages), messages
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cli.pid, signal.SIGKILL)
