"""`make ablation`: run the ``ablation_study`` job (the ``ablation`` asset) in this process
on the Dagster instance of ``DAGSTER_HOME`` (so the run and its metadata show in
``make dev``), print the table and the claims, and with ``--results FILE`` write them,
with the exact command, the machine and the date, between the markers of that results
doc (the text around them is left as it is).

    python -m assets.ablation [--users 20000] [--hours 16] [--warmup 4] [--seeds 0,1,2]
                              [--variants full,no_cross,...] [--sim-seed 7] [--results F]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import torch

from assets.definitions import defs
from assets.studies import ABLATION, AblationStudyConfig
from ml.io.store import DEFAULT_HOME, Store
from ml.train.variants import SEEDS, VARIANTS

BEGIN, END = "<!-- ablation:begin -->", "<!-- ablation:end -->"


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = AblationStudyConfig()
    ap = argparse.ArgumentParser(
        prog="python -m assets.ablation", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--users", type=int, default=d.users)
    ap.add_argument("--hours", type=int, default=d.hours, help="trained hours")
    ap.add_argument("--warmup", type=int, default=d.warmup_hours, help="hours not evaluated")
    ap.add_argument("--seeds", type=_ints, default=list(SEEDS), help="e.g. 0,1,2")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    ap.add_argument("--sim-seed", type=int, default=d.sim_seed)
    ap.add_argument("--results", type=Path, help="a results doc to write the table into")
    return ap.parse_args(argv)


def report(manifest: dict, table_md: str, argv: list[str]) -> str:
    """The table and claims with the command, the machine and the date."""
    cmd = "python -m assets.ablation " + " ".join(shlex.quote(a) for a in argv)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), device {manifest['device']}"
    )
    w = manifest["world"]
    return "\n".join([
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {machine}  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d}; wall time {manifest['seconds']:.0f} s "
        f"(data layer {manifest['data_layer_seconds']:.0f} s)  ",
        f"World: {w['users']} users, {w['hours']} trained hours from {w['start']}, simulator "
        f"seed {w['sim_seed']}; evaluated after {manifest['config']['warmup_hours']} warm-up "
        f"hours on {manifest['summary'][0]['n']} exposures per run "
        f"({manifest['summary'][0]['n_low_live']} of the low-live cohort)",
        "",
        table_md,
    ])  # fmt: skip


def write_results(path: Path, text: str) -> None:
    """Replace what lies between the markers of ``path`` (appended when it has none)."""
    doc = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + block + rest.split(END, 1)[1]
    else:
        doc = doc + ("\n" if doc else "") + block + "\n"
    path.write_text(doc)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    config = {
        "users": args.users, "hours": args.hours, "warmup_hours": args.warmup,
        "seeds": args.seeds, "variants": [v for v in args.variants.split(",") if v],
        "sim_seed": args.sim_seed,
    }  # fmt: skip
    job = defs.resolve_job_def("ablation_study")
    home = os.environ.get("DAGSTER_HOME")
    instance = dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral()
    with instance:
        result = job.execute_in_process(
            run_config={"ops": {ABLATION: {"config": config}}}, instance=instance,
            raise_on_error=False,
        )  # fmt: skip
    if not result.success:
        print("the ablation study failed: see the run's logs above", file=sys.stderr)
        return 1
    lake = Store(os.environ.get("LIVECROSS_HOME", DEFAULT_HOME))
    manifest = lake.manifest(f"lake/{ABLATION}")
    table_md = lake.read_bytes(f"lake/{ABLATION}/ablation.md").decode()
    text = report(manifest, table_md, argv)
    print(text)
    if args.results:
        write_results(args.results, text)
        print(f"written to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
