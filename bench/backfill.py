"""Per-hour cost of a backfill against the CLI: the same simulated hours built by a job
backfill of ``hourly_pipeline`` through the daemon (one run per hour, in order: the way
README recommends), and by ``dagster asset materialize --partition`` called once per hour
(the peer). Both on fresh copies of the same landing zone, with the same executor.

    python bench/backfill.py [--users 300] [--hours 3] [--seed 5] [--asset-backfill]
    (or BACKFILL_BENCH_USERS / BACKFILL_BENCH_HOURS / BACKFILL_BENCH_SEED)

value = seconds per hour of the job backfill, from its submission to COMPLETED_SUCCESS;
peer_value = seconds per hour by CLI; ratio = value / peer_value (issue 13 asks ≤ 2). With
``--asset-backfill`` an asset backfill of the same assets and hours is timed too (slower:
Dagster gives every self-dependent asset of an hour a run of its own). Prints one JSON
line to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
START = "2026-01-01-00:00"
os.environ["LIVECROSS_START"] = START  # before anything imports assets.partitions

import dagster as dg  # noqa: E402

from assets.backfill import (  # noqa: E402
    Daemon,
    submit_backfill,
    submit_job_backfill,
    wait_for_backfill,
)
from assets.definitions import HOURLY, HOURLY_ASSET_NAMES, hourly_pipeline_job  # noqa: E402
from ml.hours import HOUR_MS, parse_hour, partition_key  # noqa: E402
from ml.sim import SimConfig, simulate  # noqa: E402

BIN = Path(sys.executable).parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fresh(world: Path, landing: Path, name: str) -> dict[str, str]:
    """A data root holding a copy of the landing zone, and an empty instance beside it."""
    home = world / name / "home"
    shutil.copytree(landing, home / "landing")
    dagster_home = world / name / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "infra" / "dagster.yaml", dagster_home / "dagster.yaml")
    return {**os.environ, "LIVECROSS_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}


def by_cli(env: dict[str, str], keys: list[str]) -> float:
    t0 = time.perf_counter()
    for key in keys:
        args = [str(BIN / "dagster"), "asset", "materialize", "-m", "assets.definitions",
                "--select", ",".join(HOURLY_ASSET_NAMES), "--partition", key]  # fmt: skip
        r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"CLI run of {key} failed:\n{r.stderr[-3000:]}")
        log(f"  cli {key}: {time.perf_counter() - t0:.1f} s so far")
    return time.perf_counter() - t0


def by_backfill(env: dict[str, str], keys: list[str], kind: str) -> float:
    dagster_home = env["DAGSTER_HOME"]
    os.environ.update(env)
    with (
        Daemon(env, Path(dagster_home) / "daemon.log"),
        dg.DagsterInstance.from_config(dagster_home) as instance,
    ):
        time.sleep(5)  # let the daemon come up: its start is not the backfill's cost
        t0 = time.perf_counter()
        if kind == "job":
            bid = submit_job_backfill(instance, hourly_pipeline_job.name, keys, "bench")
        else:
            asset_keys = [k for a in HOURLY for k in a.keys]
            bid = submit_backfill(instance, asset_keys, keys, "bench")
        status = wait_for_backfill(instance, bid)
        seconds = time.perf_counter() - t0
        if status.value != "COMPLETED_SUCCESS":
            raise SystemExit(f"{kind} backfill ended {status.value}: see {dagster_home}")
        runs = len(instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": bid})))
    log(f"  {kind} backfill: {seconds:.1f} s, {runs} runs")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=int(os.environ.get("BACKFILL_BENCH_USERS", 300)))
    ap.add_argument("--hours", type=int, default=int(os.environ.get("BACKFILL_BENCH_HOURS", 3)))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("BACKFILL_BENCH_SEED", 5)))
    ap.add_argument("--asset-backfill", action="store_true", help="also time an asset backfill")
    args = ap.parse_args()
    keys = [partition_key(parse_hour(START) + i * HOUR_MS) for i in range(args.hours)]
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        world = Path(tmp)
        sim = world / "sim"
        log(f"simulating {args.hours} hours, {args.users} users ...")
        simulate(SimConfig(hours=args.hours, users=args.users, seed=args.seed), str(sim),
                 progress=False)  # fmt: skip
        cli = by_cli(fresh(world, sim / "landing", "cli"), keys)
        job = by_backfill(fresh(world, sim / "landing", "job"), keys, "job")
        assets = (
            by_backfill(fresh(world, sim / "landing", "assets"), keys, "asset")
            if args.asset_backfill
            else None
        )
    per = args.hours
    print(
        json.dumps(
            {
                "bench": "backfill",
                "value": round(job / per, 2),
                "unit": "s/hour (job backfill of hourly_pipeline, through the daemon)",
                "peer": "dagster asset materialize --partition, once per hour",
                "peer_value": round(cli / per, 2),
                "ratio": round(job / cli, 3),
                "params": {
                    "users": args.users,
                    "hours": args.hours,
                    "seed": args.seed,
                    "asset_backfill_s_per_hour": None if assets is None else round(assets / per, 2),
                    "executor": os.environ.get("LIVECROSS_EXECUTOR", "multiprocess"),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "note": "the backfill's time runs from its submission to its final status "
                    "(the daemon already up); the CLI's includes each call's start-up",
                },
            }
        )
    )


if __name__ == "__main__":
    main()
