"""Streaming training with progressive validation (DESIGN §7.5).

One hour at a time: the trainer holds the model as the checkpoint of H-1 left it, replays
the samples emitted in H in emission order, in chunks of ``chunk_ms`` of emission time,
and **before** training on chunk c scores every exposure of H whose t0 falls in chunk c.
Chunk c holds samples emitted in [H + c·Δ, H + (c+1)·Δ), so an exposure scored at the
start of its chunk meets a model that has seen only samples emitted before the chunk
began, at or before its t0: no exposure is scored by a model that trained on anything
emitted after its t0. Every prediction records how many samples the model had trained on
(``model_samples``) and the latest emission among them (``model_max_emit_ms``), which the
progressive check recomputes from the sample tables.

Exposures reported in H whose t0 lies before H (late-reported impressions) are not
scored: the model as of their t0 was the one of an earlier hour's run, which no longer
exists; they are counted (``late_not_scored``), never silently dropped.

Loss of a batch: Σ over its samples of each stream's loss (``ml.models.losses``: sums,
so a slow correction cancels a fast negative exactly), divided by the batch's sample
count, plus ``align_weight`` × the Cross alignment InfoNCE.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ml.hours import HOUR_MS
from ml.models.losses import TRAINING_MODES, stream_loss
from ml.models.ranking import MomentCrossConfig, MomentCrossModel, ranking_score
from ml.schema import TASKS
from ml.train.checkpoint import require_same_config
from ml.train.host_memory import keep_freed_memory
from ml.train.tensors import FRESHNESS_CHOICES, ExposureRows, SampleRows

STREAM_ORDER = {"moment": 0, "fast": 1, "slow": 2}  # ties in emission time: a fixed order
STREAM_NAMES = tuple(sorted(STREAM_ORDER, key=STREAM_ORDER.get))

PREDICTION_SCHEMA = pa.schema(
    [
        ("exposure_id", pa.string()),
        ("user_id", pa.int64()),
        ("room_id", pa.int64()),
        ("t0_ms", pa.int64()),
        *[(f"p_{t}", pa.float32()) for t in TASKS],
        ("score", pa.float32()),
        ("chunk", pa.int32()),
        ("model_samples", pa.int64()),  # samples trained on before this score, all hours
        ("model_samples_in_hour", pa.int64()),  # of which emitted in this hour
        ("model_max_emit_ms", pa.int64()),  # latest emission among them (-1: none)
    ]
)


@dataclass(frozen=True)
class TrainConfig:
    mode: str = "moment"  # "moment" | "fast" | "fast+slow": which streams train the model
    freshness: str = "30s"  # real-time room features: "30s" (Moment) | "5m" (classic)
    chunk_ms: int = 60_000  # Δ: emission time per replay chunk
    batch_size: int = 512  # most samples per optimizer step
    lr: float = 1e-3
    weight_decay: float = 0.0
    clip_norm: float = 10.0
    seed: int = 0
    score_batch: int = 4096

    def __post_init__(self):
        if self.mode not in TRAINING_MODES:
            raise ValueError(f"mode {self.mode!r}: one of {tuple(TRAINING_MODES)}")
        if self.freshness not in FRESHNESS_CHOICES:
            raise ValueError(f"freshness {self.freshness!r}: one of {FRESHNESS_CHOICES}")
        if self.chunk_ms < 1 or HOUR_MS % self.chunk_ms:
            raise ValueError(f"chunk_ms {self.chunk_ms} must divide an hour")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")

    @property
    def streams(self) -> tuple[str, ...]:
        return TRAINING_MODES[self.mode]


@dataclass
class Counters:
    """What the model has trained on so far, over every hour (part of the checkpoint)."""

    hours: int = 0
    steps: int = 0
    samples: int = 0
    max_emit_ms: int = -1
    last_hour_ms: int = -1
    per_stream: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAM_ORDER, 0))


@dataclass
class HourData:
    """What one hour's replay reads: the exposures rows (window), the samples of the
    hour's training streams joined to them, and the rows of the exposures to score."""

    hour_ms: int
    rows: ExposureRows
    samples: list[SampleRows]
    score_rows: np.ndarray  # int64 rows of the exposures reported in H
    content: torch.Tensor  # float32 (N, E)


@dataclass
class HourResult:
    predictions: pa.Table
    stats: dict
    step_log: list[dict]  # per optimizer step: step, stream losses, grad norm, lr


def _emission_order(samples: list[SampleRows]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stream index, position in its stream, emit_ms) of every sample, in emission order
    (ties: stream order, then the stream table's own order): deterministic."""
    si = np.concatenate([np.full(len(s), STREAM_ORDER[s.stream], np.int8) for s in samples])
    pos = np.concatenate([np.arange(len(s)) for s in samples])
    emit = np.concatenate([s.emit_ms for s in samples])
    order = np.lexsort((pos, si, emit))
    return si[order], pos[order], emit[order]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam over every parameter, fused: one kernel over all tensors (~4x cheaper a step on
    CPU than the per-tensor loop, same update rule)."""
    return torch.optim.Adam(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True
    )


class StreamTrainer:
    """The model, its optimizer and counters, carried from hour to hour."""

    def __init__(
        self,
        model_cfg: MomentCrossConfig,
        train_cfg: TrainConfig,
        device="cpu",
        rank: int = 0,
        world: int = 1,
    ):
        """``world`` > 1: one of ``world`` DDP processes (the process group is set up by
        the caller, e.g. ``ml.train.ddp`` under torchrun); each takes its share of every
        global batch and gradients are averaged, so the run equals one process with the
        same global batch (up to float summation order, and the alignment InfoNCE, whose
        in-batch negatives are those of each process's share)."""
        self.model_cfg, self.cfg = model_cfg, train_cfg
        self.device = torch.device(device)
        self.rank, self.world = rank, world
        keep_freed_memory()  # steps reuse the memory of the step before (no page faults)
        torch.manual_seed(train_cfg.seed)  # the seeded initialisation of the first hour
        self.model = build_ranking_model(model_cfg, train_cfg.seed, str(self.device))
        self.train_forward: nn.Module = _TrainForward(self.model)
        if world > 1:
            self.train_forward = DistributedDataParallel(self.train_forward)
        self.opt = make_optimizer(self.model, train_cfg)
        self.counters = Counters()
        self.generator = torch.Generator().manual_seed(train_cfg.seed)
        self.autocast = self.device.type == "cuda"

    # ---- checkpoint ------------------------------------------------------------------------
    def state(self) -> dict:
        """Weights, optimizer, RNG and counters: everything an exact resume needs (tensors,
        numbers and strings only, so ``torch.load(weights_only=True)`` reads it)."""
        c = self.counters
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "rng": torch.get_rng_state(),
            "generator": self.generator.get_state(),
            "counters": {
                "hours": c.hours,
                "steps": c.steps,
                "samples": c.samples,
                "max_emit_ms": c.max_emit_ms,
                "last_hour_ms": c.last_hour_ms,
                **{f"stream_{k}": v for k, v in c.per_stream.items()},
            },
            "config": config_fingerprint(self.model_cfg, self.cfg),
        }

    def load_state(self, state: dict) -> None:
        require_same_config(state["config"], config_fingerprint(self.model_cfg, self.cfg))
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        self.generator.set_state(state["generator"])
        c = state["counters"]
        self.counters = Counters(
            hours=c["hours"], steps=c["steps"], samples=c["samples"],
            max_emit_ms=c["max_emit_ms"], last_hour_ms=c["last_hour_ms"],
            per_stream={k: c[f"stream_{k}"] for k in STREAM_ORDER},
        )  # fmt: skip

    # ---- one hour --------------------------------------------------------------------------
    def run_hour(self, data: HourData, log_every: int = 1, score: bool = True) -> HourResult:
        cfg, c = self.cfg, self.counters
        if c.last_hour_ms >= data.hour_ms:
            raise ValueError(
                f"the model has already trained on hour {c.last_hour_ms} >= {data.hour_ms}"
            )
        t_start = time.perf_counter()
        if data.rows.table_rows is None:  # hash each exposure's ids once, not every step
            data.rows = data.rows.hash_for(self.model)
        hour, n_chunks = data.hour_ms, HOUR_MS // cfg.chunk_ms
        streams = {s.stream: s for s in data.samples}
        si, pos, emit = _emission_order(data.samples) if data.samples else (
            np.zeros(0, np.int8), np.zeros(0, np.int64), np.zeros(0, np.int64)
        )  # fmt: skip
        if len(emit) and (emit.min() < hour or emit.max() >= hour + HOUR_MS):
            raise ValueError("samples emitted outside the hour were given to run_hour")
        chunk_of_sample = (emit - hour) // cfg.chunk_ms
        bounds = np.searchsorted(chunk_of_sample, np.arange(n_chunks + 1)).tolist()

        t0 = data.rows.t0_ms[data.score_rows]
        in_hour = (t0 >= hour) & (t0 < hour + HOUR_MS)
        score_rows = data.score_rows[in_hour]
        score_chunk = (data.rows.t0_ms[score_rows] - hour) // cfg.chunk_ms
        order = np.argsort(score_chunk, kind="stable")
        score_rows, score_chunk = score_rows[order], score_chunk[order]
        score_bounds = np.searchsorted(score_chunk, np.arange(n_chunks + 1)).tolist()

        probs = np.zeros((len(score_rows), len(TASKS)), np.float32)
        seen = np.zeros(len(score_rows), np.int64)
        seen_hour = np.zeros(len(score_rows), np.int64)
        max_emit = np.zeros(len(score_rows), np.int64)
        step_log: list[dict] = []
        loss_sums = dict.fromkeys(cfg.streams, 0.0)
        trained_in_hour = 0
        for chunk in range(n_chunks):
            a, b = score_bounds[chunk], score_bounds[chunk + 1]
            if b > a:  # score first: the model has seen only samples emitted before the chunk
                if score:
                    probs[a:b] = self._predict(data, score_rows[a:b])
                seen[a:b], seen_hour[a:b] = c.samples, trained_in_hour
                max_emit[a:b] = c.max_emit_ms
            lo, hi = bounds[chunk], bounds[chunk + 1]
            for s0 in range(lo, hi, cfg.batch_size):
                s1 = min(s0 + cfg.batch_size, hi)
                losses, gnorm = self._step(data, streams, si[s0:s1], pos[s0:s1])
                trained_in_hour += s1 - s0
                c.samples += s1 - s0
                c.steps += 1
                c.max_emit_ms = max(c.max_emit_ms, int(emit[s1 - 1]))
                for k, v in losses.items():
                    loss_sums[k] = loss_sums.get(k, 0.0) + v[0]
                if c.steps % log_every == 0:
                    step_log.append(
                        {"step": c.steps, "grad_norm": gnorm, "lr": cfg.lr, "samples": s1 - s0}
                        | {f"loss_{k}": v[0] / max(v[1], 1) for k, v in losses.items()}
                    )
        for k in STREAM_ORDER:
            if k in streams:
                c.per_stream[k] += len(streams[k])
        c.hours += 1
        c.last_hour_ms = hour
        predictions = self._prediction_table(
            data, score_rows, score_chunk, probs, seen, seen_hour, max_emit
        )
        per_stream = {s: len(streams[s]) if s in streams else 0 for s in cfg.streams}
        stats = {
            "samples": trained_in_hour,
            "samples_per_stream": per_stream,
            "loss_per_stream": {s: loss_sums[s] / max(per_stream[s], 1) for s in cfg.streams},
            "steps_in_hour": sum(
                -(-int(bounds[i + 1] - bounds[i]) // cfg.batch_size) for i in range(n_chunks)
            ),
            "exposures_scored": len(score_rows),
            "late_not_scored": int((~in_hour).sum()),
            "seconds": time.perf_counter() - t_start,
            "counters": asdict(c),
        }
        return HourResult(predictions, stats, step_log)

    def _step(self, data, streams, si, pos) -> tuple[dict, float]:
        self.model.train()
        n_global = len(si)
        scale = 1.0  # DDP averages gradients over processes: each share's loss is scaled up
        if self.world > 1 and n_global >= self.world:
            share = np.array_split(np.arange(n_global), self.world)[self.rank]
            si, pos, scale = si[share], pos[share], float(self.world)
        rows = np.empty(len(si), np.int64)
        y = np.empty((len(si), len(TASKS)), np.float32)
        m = np.empty((len(si), len(TASKS)), np.bool_)
        for k in np.unique(si):
            sel = si == k
            s = streams[STREAM_NAMES[k]]
            rows[sel], y[sel], m[sel] = s.row[pos[sel]], s.y[pos[sel]], s.m[pos[sel]]
        x = self._to_device(data.rows.inputs(rows, data.content))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits, align = self.train_forward(x)
        logits = logits.float()
        yt, mt = torch.from_numpy(y).to(self.device), torch.from_numpy(m).to(self.device)
        total = logits.new_zeros(())
        losses = {}
        for k in np.unique(si):
            sel = torch.from_numpy(np.flatnonzero(si == k)).to(self.device)
            name = STREAM_NAMES[k]
            lk = stream_loss(name, logits[sel], yt[sel], mt[sel])
            total = total + lk
            losses[name] = (float(lk.detach()), len(sel))
        loss = total * (scale / n_global) + self.model_cfg.align_weight * align.float()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm))
        self.opt.step()
        return losses, gnorm

    def _to_device(self, x):
        """On CUDA: pinned host memory, so the copy is asynchronous (non_blocking)."""
        if self.device.type != "cuda":
            return x
        return x.pin_memory().to(self.device, non_blocking=True)

    @torch.no_grad()
    def _predict(self, data: HourData, rows: np.ndarray) -> np.ndarray:
        self.model.eval()
        out = []
        for a in range(0, len(rows), self.cfg.score_batch):
            x = data.rows.inputs(rows[a : a + self.cfg.score_batch], data.content)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                logits = self.model(self._to_device(x))
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(TASKS)), np.float32)

    def _prediction_table(self, data, rows, chunk, probs, seen, seen_hour, max_emit) -> pa.Table:
        r = data.rows
        score = ranking_score(torch.from_numpy(probs), self.model_cfg.alphas).numpy()
        cols = {
            "exposure_id": r.exposure_id.take(pa.array(rows)),
            "user_id": r.user_id[rows],
            "room_id": r.room_id[rows],
            "t0_ms": r.t0_ms[rows],
            **{f"p_{t}": probs[:, i] for i, t in enumerate(TASKS)},
            "score": score.astype(np.float32),
            "chunk": chunk.astype(np.int32),
            "model_samples": seen,
            "model_samples_in_hour": seen_hour,
            "model_max_emit_ms": max_emit,
        }
        return pa.table(cols, schema=PREDICTION_SCHEMA)


def build_ranking_model(cfg: MomentCrossConfig, seed: int, device: str = "cpu") -> nn.Module:
    """The model of ``cfg.family`` on ``device`` (the caller seeds torch first)."""
    if cfg.family == "deepctr_ple":
        from ml.models.deepctr import DeepCtrPleRanker  # the library is imported on use

        return DeepCtrPleRanker(cfg, seed=seed, device=device).to(device)
    return MomentCrossModel(cfg).to(device)


class _TrainForward(nn.Module):
    """``forward`` = the model's ``forward_train``: DDP synchronises gradients through the
    wrapped module's ``forward`` only."""

    def __init__(self, model: MomentCrossModel):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_train(x)


def config_fingerprint(model_cfg: MomentCrossConfig, train_cfg: TrainConfig) -> str:
    """A stable text of both configurations (a checkpoint only resumes the same run)."""
    return json.dumps({"model": asdict(model_cfg), "train": asdict(train_cfg)}, sort_keys=True)
