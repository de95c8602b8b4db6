"""Training throughput of the default ranking model (``variants.BASE_MODEL``: hashed ids,
target attention over 5 GSUs x 50 items, PLE 2 levels, 6 towers), 2 CPU threads.

value: samples/s of one training step on pre-built batches of ``--batch`` samples from a
synthetic hour (12 room feats, 8 user feats, ~30 % padded sequence positions, moment-stream
labels and masks): forward_train + the moment stream loss (summed / B) + align_weight x the
alignment InfoNCE + backward + Adam, the median of ``--repeat`` rounds of ``--steps`` steps
after warm-up. peer: DeepCTR-Torch 0.3.0's PLE with the same d, experts, levels, towers and Adam
on the same samples (user/room/author ids hashed like ours, the 3 context categoricals, the
room feats, user feats and room content embedding as dense, and per GSU its item, author
and category as mean-pooled ``VarLenSparseFeat``: ``ml.models.deepctr.DeepCtrPleRanker``,
the ablation's baseline, its input tensor built before timing), masked BCE with logits over
the 6 tasks, timed the same way. params also report forward-only scoring samples/s, the streaming replay of one
hour (``StreamTrainer.run_hour``: chunked replay, scoring and clipping included), the FLOPs
of one step and peak RSS.

    python bench/train.py [--batch 1024] [--steps 30] [--exposures 20000] [--device cpu]
    python bench/train.py --quick  # smoke run, < 60 s
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _rounds import interleaved_rates  # noqa: E402

from ml.models.deepctr import DeepCtrPleRanker  # noqa: E402
from ml.models.inputs import N_GAP_BUCKETS, N_PAGE_CODES  # noqa: E402
from ml.models.losses import stream_loss  # noqa: E402
from ml.models.ranking import MomentCrossConfig, MomentCrossModel  # noqa: E402
from ml.schema import EMBED_DIM, N_ACTION_CODES, TASKS  # noqa: E402
from ml.train.host_memory import keep_freed_memory  # noqa: E402
from ml.train.stream import (  # noqa: E402
    HOUR_MS,
    HourData,
    StreamTrainer,
    TrainConfig,
    make_optimizer,
)
from ml.train.tensors import ExposureRows, SampleRows  # noqa: E402
from ml.train.variants import BASE_MODEL, BASE_TRAIN  # noqa: E402

HOUR = 1_767_225_600_000  # 2026-01-01 00:00 UTC, a Thursday
RATES = (0.5, 0.25, 0.1, 0.05, 0.05, 0.05)  # positives per task: ~2 moment samples/exposure


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def synthetic_hour(cfg: MomentCrossConfig, n: int, seed: int, videos=20_000, rooms=500):
    """(ExposureRows, moment SampleRows, content table) of one hour of ``n`` exposures."""
    rng = np.random.default_rng(seed)
    g, L, T = len(cfg.gsus), cfg.seq_len, len(TASKS)
    n_items = videos + rooms  # catalog index k has content row k + 1
    item_id = np.arange(1, n_items + 1, dtype=np.int64) * 1_000_003 + 17
    item_author = rng.integers(1, 5_000, n_items) * 7919 + 3
    item_cat = rng.integers(0, 32, n_items)
    content = rng.standard_normal((1 + n_items, EMBED_DIM)).astype(np.float32)
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    content[0] = 0.0
    zipf = 1.0 / np.arange(1, rooms + 1)
    room = videos + rng.choice(rooms, n, p=zipf / zipf.sum())
    t0 = HOUR + rng.integers(0, HOUR_MS, n)
    lengths = rng.integers(25, L + 1, (n, g))
    lengths[rng.random((n, g)) < 0.05] = 0
    mask = np.arange(L) < lengths[..., None]
    k = rng.integers(0, n_items, (n, g, L))

    def pad(a, dtype):
        return np.where(mask, a, 0).astype(dtype)

    seq = {
        "item": pad(item_id[k], np.int64), "author": pad(item_author[k], np.int64),
        "category": pad(item_cat[k] + 1, np.int32), "row": pad(k + 1, np.int32),
        "gap": pad(rng.integers(0, N_GAP_BUCKETS, k.shape), np.int32),
        "action": pad(rng.integers(0, N_ACTION_CODES, k.shape), np.int8), "mask": mask,
    }  # fmt: skip
    page = rng.integers(0, N_PAGE_CODES, n)
    rows = ExposureRows(
        exposure_id=pa.array([f"x{i}" for i in range(n)]),
        t0_ms=t0,
        user_id=rng.integers(1, 20_000, n) * 9973 + 11,
        room_id=item_id[room],
        author_id=item_author[room],
        context=np.stack([np.zeros(n), np.full(n, 3), page], 1).astype(np.int8),
        room_row=(room + 1).astype(np.int32),
        room_feats=(rng.random((n, cfg.f_room)) * 3).astype(np.float32),
        user_feats=(rng.random((n, cfg.f_user)) * 5).astype(np.float32),
        seq=seq,
    )
    # Moment stream: one sample per first positive (that task labelled 1), one exit sample
    # (tasks not yet positive labelled 0); samples emitted after the hour are dropped.
    pos = rng.random((n, T)) < np.array(RATES)
    e, t = np.nonzero(pos)
    row = np.concatenate([e, np.arange(n)])
    emit = np.concatenate([t0[e] + rng.exponential(60_000, len(e)), t0 + rng.exponential(3e5, n)])
    y = np.concatenate([np.eye(T)[t], np.zeros((n, T))]).astype(np.float32)
    m = np.concatenate([np.eye(T, dtype=bool)[t], ~pos])
    keep = emit < HOUR + HOUR_MS
    samples = SampleRows("moment", row[keep], emit[keep].astype(np.int64), y[keep], m[keep])
    return rows, samples, torch.from_numpy(content)


def ours_step(model, opt, batch, amp):
    x, y, m = batch
    model.train()
    with torch.autocast(y.device.type, dtype=torch.bfloat16, enabled=amp):
        logits, align = model.forward_train(x)
    loss = stream_loss("moment", logits.float(), y, m) / len(y)
    loss = loss + model.cfg.align_weight * align.float()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def peer_step(model, opt, batch, amp):
    X, y, m = batch  # X: DeepCTR's input tensor, built before timing (as our hashed batches)
    with torch.autocast(y.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model.ple(X)  # the library's PLE forward (B, T)
    per = F.binary_cross_entropy_with_logits(logits.float(), y, reduction="none")
    loss = torch.where(m, per, torch.zeros_like(per)).sum() / len(y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--n-batches", type=int, default=4, help="pre-built batches, cycled")
    ap.add_argument("--exposures", type=int, default=20_000, help="of the replayed hour")
    ap.add_argument("--replay-batch", type=int, default=BASE_TRAIN.batch_size)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu | cuda (bf16 autocast, batch >= 8192)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast on CPU too (both models)")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="device peak, for MFU")
    ap.add_argument("--profile", action="store_true", help="op profile of our step to stderr")
    ap.add_argument("--quick", action="store_true", help="smoke run, < 60 s")
    ap.add_argument("--malloc-default", action="store_true", help="glibc's default malloc trimming")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.warmup, args.repeat, args.n_batches = 4, 1, 1, 2
        args.exposures = min(args.exposures, 3_000)
    torch.set_num_threads(args.threads)
    # The trainer's host-memory setting (StreamTrainer applies it), for the whole process:
    # both models run with it. --malloc-default measures without.
    malloc_keeps_freed = False if args.malloc_default else keep_freed_memory()
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    amp = cuda or args.bf16
    batch = max(args.batch, 8192) if cuda else args.batch

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    cfg = BASE_MODEL
    rows, samples, content = synthetic_hour(cfg, args.exposures, args.seed)
    padded = 1.0 - rows.seq["mask"].mean()
    log(f"hour: {len(rows)} exposures, {len(samples)} moment samples, {padded:.0%} padded")
    rng, picks_n = np.random.default_rng(args.seed + 1), args.n_batches * batch
    picks = rng.choice(len(samples), (args.n_batches, batch), replace=len(samples) < picks_n)
    torch.manual_seed(args.seed)
    ours = MomentCrossModel(cfg).to(dev)
    peer = DeepCtrPleRanker(cfg, seed=args.seed, device=args.device).to(dev)
    ours_b, peer_b = [], []
    for idx in picks:
        x = rows.inputs(samples.row[idx], content)
        y, m = torch.from_numpy(samples.y[idx]).to(dev), torch.from_numpy(samples.m[idx]).to(dev)
        ours_b.append((ours.hash_ids(x).to(dev), y, m))  # hashed once, as the loader does
        peer_b.append((peer.columns(x).to(dev), y, m))
    # Both with the trainer's optimiser (fused Adam, BASE_TRAIN's learning rate).
    ours_opt, peer_opt = make_optimizer(ours, BASE_TRAIN), make_optimizer(peer, BASE_TRAIN)
    peer.train()

    def score(b):
        ours.eval()
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            ours(b[0])

    jobs = [
        (lambda b: ours_step(ours, ours_opt, b, amp), ours_b, batch),
        (lambda b: peer_step(peer, peer_opt, b, amp), peer_b, batch),
        (score, ours_b, batch),
    ]
    ours_r, peer_r, score_r = interleaved_rates(jobs, args.steps, args.warmup, args.repeat, sync)
    value, peer_value, score_rate = (float(np.median(r)) for r in (ours_r, peer_r, score_r))
    round_ratios = np.array(ours_r) / np.array(peer_r)
    ratio = float(np.median(round_ratios))
    log(f"ours {value:.0f}, DeepCTR PLE {peer_value:.0f}, scoring {score_rate:.0f} samples/s")
    with FlopCounterMode(display=False) as fc:
        ours_step(ours, ours_opt, ours_b[0], amp)
    gflop = fc.get_total_flops() / 1e9
    achieved_tflops = gflop * value / batch / 1e3
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=acts) as prof:
            for b in ours_b:
                ours_step(ours, ours_opt, b, amp)
            sync()
        key = "self_device_time_total" if cuda else "self_cpu_time_total"
        log(prof.key_averages().table(sort_by=key, row_limit=25))

    log(f"replay: one hour of {len(rows)} exposures, batch {args.replay_batch}")
    trainer = StreamTrainer(cfg, TrainConfig(batch_size=args.replay_batch), device=args.device)
    hour = HourData(HOUR, rows, [samples], np.arange(len(rows)), content)
    stats = trainer.run_hour(hour, log_every=10**9).stats
    replay_rate = stats["samples"] / stats["seconds"]
    log(f"replay: {replay_rate:.0f} samples/s, {stats['exposures_scored']} scored")
    params = {
        "model": "variants.BASE_MODEL",
        "batch": batch,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "timing": f"median of {args.repeat} interleaved rounds, {args.n_batches} pre-built "
        "batches cycled; ratio = median of the rounds' ratios",
        "round_ratios": [round(float(r), 2) for r in round_ratios],
        "goal_ratio": 1.5,
        "meets_goal": ratio >= 1.5,
        "score_samples_per_s": round(score_rate),
        "replay_samples_per_s": round(replay_rate),
        "replay": {k: stats[k] for k in ("samples", "steps_in_hour", "exposures_scored")}
        | {"seconds": round(stats["seconds"], 2), "batch": args.replay_batch},
        "padded_seq_share": round(float(padded), 3),
        "train_step_gflop": round(gflop, 3),
        "achieved_tflops": round(achieved_tflops, 4),
        "peer_inputs": "no gap/action/content of GSU items (ours reads them)",
        "peer_fix": "DeepCTR 0.3.0 PLE shared experts rebuilt (n_shared, not n_specific)",
        "device": str(dev) + (f" {torch.cuda.get_device_name()}" if cuda else ""),
        "amp": "bf16" if amp else "off",
        "threads": args.threads,
        "malloc_keeps_freed_memory": malloc_keeps_freed,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cpus": os.cpu_count(),
    }
    if cuda:
        params["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    if args.peak_tflops > 0:
        params["mfu"] = round(achieved_tflops / args.peak_tflops, 5)
    out = {"name": "train", "value": round(value), "unit": "samples/s", "peer": "deepctr_torch_ple",
           "peer_value": round(peer_value), "ratio": round(ratio, 2), "params": params}  # fmt: skip
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
