"""A run launcher whose run workers the run monitoring daemon can health-check.

Dagster's DefaultRunLauncher launches runs on code servers, as this one does, but offers the
daemon no worker health check, so a STARTED run whose process died with no code server
watching it (a SIGKILLed `dagster job execute` / `dagster asset materialize`, or a worker
orphaned together with its code server) held a queue slot until max_runtime_seconds.

The check: the run's process is the worker's own "Started process for run (pid: N)" engine
event for a launched run, else the pid on its RUN_START event (the CLI process, for an
in-process CLI run). Its run is failed when no process with that pid is alive on this host,
or when the live one started after that event was written (the pid was reused). A run whose
pid cannot be found, or that a code server on another host executes, is reported RUNNING:
the daemon fails a run on any other status, and the runtime limit still applies to it.
"""

import os
import re
import socket
from collections.abc import Mapping
from typing import Any

from dagster import DefaultRunLauncher, Field
from dagster._core.events import DagsterEventType
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._serdes.config_class import ConfigurableClassData
from dagster_shared import seven

_STARTED_PROCESS = re.compile(r"Started process for run \(pid: (\d+)\)\.")
# /proc start times are in clock ticks; the event's timestamp is taken after the process
# starts, so a process that started more than this after it is not the one that wrote it.
_START_SLACK_S = 1.0
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def process_start_time(pid: int) -> float | None:
    """Unix time at which `pid` started, from /proc (Linux); None where unavailable."""
    boot = _boot_time()
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    if boot is None:
        return None
    # Field 2 (comm) is parenthesised and may hold spaces: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of the whole line


def process_alive(pid: int) -> bool:
    """Whether `pid` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


class LivenessCheckingRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher plus a run worker health check by pid, for the run monitoring
    daemon. Configure with `run_launcher: {module: resources.run_launcher, class:
    LivenessCheckingRunLauncher}`; `config: {check_cli_runs: false}` skips runs that no code
    server launched, for storage that runs on other hosts write to."""

    def __init__(self, inst_data: ConfigurableClassData | None = None, check_cli_runs=True):
        self._check_cli_runs = check_cli_runs
        super().__init__(inst_data=inst_data)

    @classmethod
    def config_type(cls):
        return {
            "check_cli_runs": Field(
                bool,
                is_required=False,
                default_value=True,
                description="Check runs with no code server (CLI runs) as if on this host.",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> "LivenessCheckingRunLauncher":
        return cls(inst_data=inst_data, **config_value)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def _on_this_host(self, run: DagsterRun) -> bool:
        grpc_info = run.tags.get(GRPC_INFO_TAG)
        if grpc_info is None:  # not launched on a code server: a CLI run
            return self._check_cli_runs
        info = seven.json.loads(grpc_info)
        if info.get("socket"):
            return True
        host = (info.get("host") or "localhost").lower()
        return host in _LOCAL_HOSTS or host in {
            socket.gethostname().lower(),
            socket.getfqdn().lower(),
        }

    def run_process(self, run: DagsterRun) -> tuple[int, float] | None:
        """(pid, timestamp of the event naming it) of the process executing the run."""
        logs = self._instance.all_logs(
            run.run_id, of_type={DagsterEventType.ENGINE_EVENT, DagsterEventType.RUN_START}
        )
        started = [
            (int(m.group(1)), e.timestamp)
            for e in logs
            if (m := _STARTED_PROCESS.fullmatch(e.message or ""))
        ]
        if started:
            return started[-1]  # the latest worker, should a run have more than one
        run_starts = [e for e in logs if e.dagster_event_type == DagsterEventType.RUN_START]
        if run_starts and run_starts[-1].dagster_event and run_starts[-1].dagster_event.pid:
            return run_starts[-1].dagster_event.pid, run_starts[-1].timestamp
        return None

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if not self._on_this_host(run):
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, "Run worker is on another host: not checked."
            )
        found = self.run_process(run)
        if found is None:
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, "No pid recorded for the run's process: not checked."
            )
        pid, recorded_at = found
        if not process_alive(pid):
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"The run's process (pid {pid}) no longer exists on {socket.gethostname()}.",
                run_worker_id=str(pid),
            )
        started_at = process_start_time(pid)
        if started_at is not None and started_at > recorded_at + _START_SLACK_S:
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"The run's process (pid {pid}) no longer exists on {socket.gethostname()}: "
                "that pid now belongs to a process started after the run's.",
                run_worker_id=str(pid),
            )
        return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
