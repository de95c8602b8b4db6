"""`make ablation` (and ``--study content``, `make content-tables`): run the
``ablation_study`` job (the ``ablation`` asset; ``content_tables``: ``content_study``) in this process
on the Dagster instance of ``DAGSTER_HOME`` (so the run and its metadata show in
``make dev``), print the table and the claims, and with ``--results FILE`` write them,
with the exact command, the machine and the date, between the markers of that results
doc (the text around them is left as it is).

    python -m assets.ablation [--study ablation|content] [--users 10000] [--hours 16]
                              [--warmup 4] [--seeds 0,1,2] [--rows perceiver,...]
                              [--variants full,...] [--sim-seed 7] [--results F]
                              [--block NAME]
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
from assets.studies import AblationStudyConfig
from ml.evaluate.content_study import ALL_ROWS
from ml.io.lake import ABLATION, CONTENT_STUDY
from ml.io.store import DEFAULT_HOME, Store
from ml.train.variants import SEEDS, VARIANTS

BLOCK = "ablation"  # the results doc's markers: <!-- ablation:begin --> .. <!-- ablation:end -->


def markers(block: str = BLOCK) -> tuple[str, str]:
    return f"<!-- {block}:begin -->", f"<!-- {block}:end -->"


BEGIN, END = markers()
STUDIES = {"ablation": (ABLATION, "ablation_study"), "content": (CONTENT_STUDY, "content_tables")}


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
    ap.add_argument(
        "--study",
        choices=tuple(STUDIES),
        default="ablation",
        help="ablation: the ranking variants; content: ContentCTR's tables",
    )
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    ap.add_argument("--rows", default=",".join(ALL_ROWS), help="the content study's rows")
    ap.add_argument("--sim-seed", type=int, default=d.sim_seed)
    ap.add_argument("--results", type=Path, help="a results doc to write the table into")
    ap.add_argument(
        "--block", help="the doc's markers: <!-- BLOCK:begin --> (default: the study's asset name)"
    )
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
        f"seed {w['sim_seed']}; evaluated on {manifest['evaluated']}",
        "",
        table_md,
    ])  # fmt: skip


def write_results(path: Path, text: str, block: str = BLOCK) -> None:
    """Replace what lies between the markers of ``path`` (appended when it has none)."""
    doc = path.read_text() if path.exists() else ""
    begin, end = markers(block)
    body = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        doc = head + body + rest.split(end, 1)[1]
    else:
        doc = doc + ("\n" if doc else "") + body + "\n"
    path.write_text(doc)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    asset, job_name = STUDIES[args.study]
    config = {
        "users": args.users, "hours": args.hours, "warmup_hours": args.warmup,
        "seeds": args.seeds, "sim_seed": args.sim_seed,
    }  # fmt: skip
    if args.study == "ablation":
        config["variants"] = [v for v in args.variants.split(",") if v]
    else:
        config["rows"] = [v for v in args.rows.split(",") if v]
    job = defs.resolve_job_def(job_name)
    home = os.environ.get("DAGSTER_HOME")
    instance = dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral()
    with instance:
        result = job.execute_in_process(
            run_config={"ops": {asset: {"config": config}}}, instance=instance,
            raise_on_error=False,
        )  # fmt: skip
    if not result.success:
        print(f"the {job_name} study failed: see the run's logs above", file=sys.stderr)
        return 1
    lake = Store(os.environ.get("LIVECROSS_HOME", DEFAULT_HOME))
    manifest = lake.manifest(f"lake/{asset}")
    table_md = lake.read_bytes(f"lake/{asset}/{asset}.md").decode()
    text = report(manifest, table_md, argv)
    print(text)
    if args.results:
        write_results(args.results, text, args.block or asset)
        print(f"written to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
