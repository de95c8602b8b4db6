"""`make demo`: simulate the last few hours of platform logs, then run the real jobs over
them through the Dagster daemon — a backfill of ``hourly_pipeline``, then of the outcomes
whose look-ahead is there, of the default model variant's streaming training and of
ContentCTR's hours, then of the ranking model's evaluation — so Jobs, Runs, Backfills and
the asset history show in ``make dev``; then print a summary (the Kendall tau table of
ContentCTR among it).

The demo's hours end at the current hour, and the partitions start at its data
(LIVECROSS_START, written to .env so that ``make dev`` and plain ``dagster`` commands use
the same start). The landing-readiness sensor and the outcome automation are switched on
at the end: simulate more hours (README) and they pick them up.

Environment: LIVECROSS_HOME, LIVECROSS_START (default: DEMO_HOURS before the current
hour), DEMO_HOURS (5), DEMO_USERS (3000), DEMO_SEED (7), DEMO_BAD_RATE (0.001).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ml.hours import HOUR_MS, hour_floor, landing_dir, parse_hour, partition_key

DEMO_HOURS = int(os.environ.get("DEMO_HOURS", "5"))
# The partitions start at the demo's data, so this must be set before anything imports
# assets.partitions (an explicit LIVECROSS_START wins).
os.environ.setdefault(
    "LIVECROSS_START", partition_key(hour_floor(int(time.time() * 1000)) - DEMO_HOURS * HOUR_MS)
)

import dagster as dg  # noqa: E402

from assets.backfill import Daemon, submit_job_backfill, wait_for_backfill  # noqa: E402
from assets.definitions import (  # noqa: E402
    content_ctr_job,
    hourly_outcomes_job,
    hourly_pipeline_job,
    landing_ready_sensor,
    model_evaluation_job,
    model_training_job,
    outcome_automation,
)
from assets.lake import (  # noqa: E402
    CATALOG,
    EXPOSURE_SEQUENCES,
    LIVE_EXPOSURES,
    LIVE_OUTCOMES,
    LIVE_SEGMENTS,
    MOMENT_CROSS_EVAL,
    MOMENT_CROSS_MODEL,
    RAW_ASSETS,
    USER_HISTORY,
)
from assets.partitions import START_KEY  # noqa: E402
from ml.envfile import write_env_file  # noqa: E402
from ml.io.lake import CONTENT_CTR_EVAL, partition_dir, variant_dir  # noqa: E402
from ml.io.store import DEFAULT_HOME, Store  # noqa: E402
from ml.moment.emission_hour import OUTCOME_LOOKAHEAD_HOURS  # noqa: E402
from ml.schema import TASKS  # noqa: E402
from ml.train.variants import DEFAULT_VARIANT  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def sh(args: list[str], env: dict[str, str]) -> None:
    print("$", " ".join(args), flush=True)
    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"demo step failed ({proc.returncode}): {' '.join(args)}")


def main() -> None:
    # A SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the daemon is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    hours, start = DEMO_HOURS, START_KEY
    home = os.environ.get("LIVECROSS_HOME", DEFAULT_HOME)
    users = int(os.environ.get("DEMO_USERS", "3000"))
    seed = os.environ.get("DEMO_SEED", "7")
    bad_rate = os.environ.get("DEMO_BAD_RATE", "0.001")
    store = Store(home)
    dagster_home = Path(os.environ.get("DAGSTER_HOME", Path(store.root) / "dagster_home"))
    if store.is_s3 and "DAGSTER_HOME" not in os.environ:
        dagster_home = ROOT / ".livecross" / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(ROOT / "infra" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "LIVECROSS_HOME": store.root, "DAGSTER_HOME": str(dagster_home)}
    write_env_file(
        ROOT / ".env",
        {"LIVECROSS_HOME": store.root, "DAGSTER_HOME": str(dagster_home), "LIVECROSS_START": start},
    )
    print(f"partitions start at {start} (written to .env)")

    t0 = time.perf_counter()
    start_ms = parse_hour(start)
    keys = [partition_key(start_ms + i * HOUR_MS) for i in range(hours)]
    last = f"landing/live/{landing_dir(start_ms + (hours - 1) * HOUR_MS)}/_SUCCESS"
    if store.exists(last):
        print(f"landing zone already holds {hours} hours from {start}: reusing it")
    else:
        sh(
            [str(BIN / "python"), "-m", "ml.sim", "--out", store.root, "--start", start,
             "--hours", str(hours), "--users", str(users), "--seed", seed, "--bad-rate", bad_rate],
            env,
        )  # fmt: skip
    t_sim = time.perf_counter() - t0
    os.environ.update(env)
    run_jobs(keys, dagster_home, env)
    summarize(store, keys, dagster_home, t_sim, time.perf_counter() - t0)


def run_jobs(keys: list[str], dagster_home: Path, env: dict[str, str]) -> None:
    """The real jobs as backfills run by the daemon, one run per partition: the hourly
    pipeline over the demo's hours; then the outcomes whose look-ahead is there beside the
    default variant's streaming training and ContentCTR's hours; then the ranking model's
    evaluation. Then switch the sensors on."""
    model_keys = [f"{k}|{DEFAULT_VARIANT}" for k in keys]
    # Final outcomes exist where the raw hours they look ahead to exist.
    final = len(keys) - OUTCOME_LOOKAHEAD_HOURS
    waves = [
        [(hourly_pipeline_job.name, keys)],
        [
            (hourly_outcomes_job.name, keys[:final]),
            (model_training_job.name, model_keys),
            (content_ctr_job.name, keys),
        ],
        [(model_evaluation_job.name, model_keys[:final])],
    ]
    with (
        Daemon(env, dagster_home.parent / "demo-daemon.log"),
        dg.DagsterInstance.from_config(str(dagster_home)) as instance,
    ):
        for wave in waves:
            t = time.perf_counter()
            # The backfills of a wave run side by side; each one's runs go in order.
            ids = {
                submit_job_backfill(instance, job, names, f"demo: {job}"): (job, names)
                for job, names in wave
                if names
            }
            for bid, (job, names) in ids.items():
                print(f"backfill {bid}: {job}, {names[0]} .. {names[-1]}", flush=True)
            for bid, (job, _) in ids.items():
                status = wait_for_backfill(instance, bid)
                print(f"  {job}: {status.value} after {time.perf_counter() - t:.0f} s", flush=True)
                if status.value != "COMPLETED_SUCCESS":
                    raise SystemExit(
                        f"demo backfill {bid} ({job}) ended {status.value}: see `make dev`"
                    )
    dagster = [str(BIN / "dagster"), "sensor", "start", "-w", str(ROOT / "workspace.yaml")]
    for sensor in (landing_ready_sensor, outcome_automation):
        sh([*dagster, sensor.name], env)


def summarize(
    store: Store, keys: list[str], dagster_home: Path, t_sim: float, t_all: float
) -> None:
    print(f"\nlivecross demo — data root {store.root}, instance {dagster_home}")
    print(f"{'partition':<18}{'asset':<24}{'lines in':>10}{'clean':>10}{'dups':>7}{'quar.':>7}")
    for key in keys:
        for asset in RAW_ASSETS.values():
            m = store.manifest(partition_dir(asset, key)) or {}
            print(
                f"{key:<18}{asset:<24}{m.get('lines_in', 0):>10}{m.get('clean', 0):>10}"
                f"{m.get('duplicates', 0):>7}{m.get('quarantined', 0):>7}"
            )
    print(f"\n{'partition':<18}{'exposures':>10}{'moment':>8}{'fast':>7}{'slow':>6}{'segments':>9}"
          f"{'fast CTR':>9}{'outcomes':>9}")  # fmt: skip
    for key in keys:
        m = store.manifest(partition_dir(LIVE_EXPOSURES, key)) or {}
        seg = store.manifest(partition_dir(LIVE_SEGMENTS, key)) or {}
        out = store.manifest(partition_dir(LIVE_OUTCOMES, key))
        print(
            f"{key:<18}{m.get('exposures', 0):>10}{m.get('moment_samples', 0):>8}"
            f"{m.get('fast_samples', 0):>7}{m.get('slow_samples', 0):>6}{seg.get('segments', 0):>9}"
            f"{m.get('fast_click_rate', 0):>9.3f}{'yes' if out else '-':>9}"
        )
    print(
        f"\n{'partition':<18}{'history rows':>13}{'sequences':>10}{'sv top-k filled':>16}{'live seq filled':>16}"
    )
    for key in keys:
        h = store.manifest(partition_dir(USER_HISTORY, key)) or {}
        q = store.manifest(partition_dir(EXPOSURE_SEQUENCES, key)) or {}
        print(
            f"{key:<18}{h.get('rows', 0):>13}{q.get('exposures', 0):>10}"
            f"{q.get('sv_topk_nonempty', 0):>16.1%}{q.get('live_nonempty', 0):>16.1%}"
        )
    print(evaluation_summary(store, keys))
    print(content_summary(store, keys))
    cat = store.manifest(partition_dir(CATALOG, keys[-1])) or {}
    print(f"catalog rows as of the last hour: {cat.get('rows')}")
    print(check_summary(dagster_home))
    print(f"simulated in {t_sim:.1f}s; whole demo {t_all:.1f}s. See it in the UI: make dev")


def evaluation_summary(store: Store, keys: list[str], variant: str = DEFAULT_VARIANT) -> str:
    """The default variant's prequential evaluation per hour: per-task AUC, the oracle's
    click AUC on the same exposures, click GAUC and calibration."""
    lines = [f"\nmodel {variant}: progressive (prequential) evaluation, final outcomes"]
    head = f"{'partition':<18}{'samples':>8}" + "".join(f"{'auc ' + t[:6]:>12}" for t in TASKS)
    lines.append(head + f"{'oracle':>8}{'gauc':>7}{'calib':>7}")
    for key in keys:
        model = store.manifest(variant_dir(MOMENT_CROSS_MODEL, variant, key)) or {}
        ev = store.manifest(variant_dir(MOMENT_CROSS_EVAL, variant, key))
        row = f"{key:<18}{model.get('samples', 0):>8}"
        if ev is None:
            lines.append(row + "   (outcomes not final yet)")
            continue
        by_task = {r["task"]: r for r in ev["tasks"]}
        row += "".join(f"{_fmt(by_task[t].get('auc')):>12}" for t in TASKS)
        click = by_task["click"]
        row += f"{_fmt((ev.get('oracle') or {}).get('oracle_auc')):>8}"
        lines.append(row + f"{_fmt(click.get('gauc')):>7}{_fmt(click.get('calibration')):>7}")
    return "\n".join(lines)


def content_summary(store: Store, keys: list[str]) -> str:
    """ContentCTR per hour, scored before it trained on the hour: Kendall tau-b over each
    window's last segment and within windows, MAE, mean prediction / mean CTR, highlight mAP."""
    lines = ["\nContentCTR: segment CTR scored before training on the hour (Kendall tau-b)"]
    cols = ("windows", "tau", "tau_window_mean", "mae", "avg_s_over_y", "highlight_map")
    heads = ("windows", "tau", "tau/window", "MAE", "avg s/y", "highl. mAP")
    lines.append(f"{'partition':<18}" + "".join(f"{h:>12}" for h in heads))
    for key in keys:
        ev = store.manifest(partition_dir(CONTENT_CTR_EVAL, key))
        if ev is None:
            lines.append(f"{key:<18}   (not evaluated)")
            continue
        cells = [f"{ev['windows']:>12}"] + [f"{_fmt(ev.get(c)):>12}" for c in cols[1:]]
        lines.append(f"{key:<18}" + "".join(cells))
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def check_summary(dagster_home: Path) -> str:
    passed = failed = runs = 0
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in instance.get_runs():
            runs += 1
            for e in instance.all_logs(
                run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            ):
                ok = e.dagster_event.event_specific_data.passed
                passed, failed = passed + ok, failed + (not ok)
    return f"instance: {runs} runs; asset checks: {passed} passed, {failed} failed"


if __name__ == "__main__":
    main()
