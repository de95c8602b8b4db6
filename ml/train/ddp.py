"""One hour of a variant's streaming training on several processes with torch DDP:

    torchrun --nproc_per_node 2 -m ml.train.ddp --root $LIVECROSS_HOME --hour 2026-01-01-03:00 \\
        --variant full-s0 [--first-partition 2026-01-01-00:00]

gloo on CPU, NCCL on GPUs (one process per GPU, ``LOCAL_RANK``); multi-node with torchrun's
``--nnodes`` / ``--rdzv-endpoint``. Every process replays the same hour in the same order
and trains on its share of each global batch; rank 0 alone scores, publishes model[H] and
the predictions, and prints one JSON line of the hour's figures.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist

from ml.hours import parse_hour
from ml.io.store import Store
from ml.moment.emission_hour import LOOKBACK_HOURS
from ml.train.publish import publish_hour, train_hour, window_keys
from ml.train.stream import StreamTrainer
from ml.train.variants import variant_configs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("LIVECROSS_HOME", "./.livecross"))
    ap.add_argument("--hour", required=True, help="partition key YYYY-MM-DD-HH:00")
    ap.add_argument("--variant", default="full-s0")
    ap.add_argument(
        "--first-partition", default=os.environ.get("LIVECROSS_START", "2026-01-01-00:00")
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    args = ap.parse_args(argv)

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    torch.set_num_threads(args.threads)
    hour_ms, start_ms = parse_hour(args.hour), parse_hour(args.first_partition)
    model_cfg, train_cfg = variant_configs(args.variant)
    trainer = StreamTrainer(
        model_cfg, train_cfg, device="cuda" if use_cuda else "cpu", rank=rank, world=world
    )
    lake = Store(args.root)
    res = train_hour(
        lake, trainer, args.variant, hour_ms, window_keys(hour_ms, LOOKBACK_HOURS, start_ms),
        start_ms, score=rank == 0,
    )  # fmt: skip
    if rank == 0:
        man = publish_hour(lake, trainer, args.variant, res)
        print(json.dumps({"rank": rank, "world": world, "samples": man["samples"],
                          "exposures_scored": man["exposures_scored"]}))  # fmt: skip
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
