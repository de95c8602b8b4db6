"""ContentCTR trained hour by hour, as the ranking model is: the model as it stands scores
the hour's windows first (those scores are what evaluation reads), then it trains on them
(``epochs`` passes in a seeded order) and carries weights, optimizer, RNG and counters to
the next hour (exact resume: the state holds tensors, numbers and strings only, so
``torch.load(weights_only=True)`` reads it).

Defaults follow the paper where they fit the CPU (Adam, batch 48, optional cosine decay)
except the learning rate: the paper's 5e-5 fine-tunes on 39,000 rooms over 12 epochs; an
hour of the simulator holds a few hundred windows seen once, where 1e-3 is what trains.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import torch

from ml.models.content_ctr import ContentCTR, ContentCTRConfig
from ml.models.content_losses import ContentLossConfig, content_ctr_loss
from ml.train.checkpoint import require_same_config
from ml.train.content_tensors import ContentBatch


@dataclass(frozen=True)
class ContentTrainConfig:
    batch_size: int = 48  # the paper's global batch
    lr: float = 1e-3
    epochs: int = 1  # passes over each hour's windows
    schedule: str = "constant"  # "constant" | "cosine" (decays over ``horizon_steps``)
    horizon_steps: int = 10_000
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule {self.schedule!r}: constant or cosine")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError("batch_size and epochs must be >= 1")


class ContentTrainer:
    def __init__(
        self,
        model_cfg: ContentCTRConfig,
        loss_cfg: ContentLossConfig,
        train_cfg: ContentTrainConfig,
        device="cpu",
    ):
        self.model_cfg, self.loss_cfg, self.cfg = model_cfg, loss_cfg, train_cfg
        self.device = torch.device(device)
        torch.manual_seed(train_cfg.seed)  # the seeded initialisation of the first hour
        self.model = ContentCTR(model_cfg).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=train_cfg.lr)
        self.generator = torch.Generator().manual_seed(train_cfg.seed)
        self.steps = 0
        self.hours = 0

    def fingerprint(self) -> str:
        return json.dumps(
            {
                "model": asdict(self.model_cfg),
                "loss": asdict(self.loss_cfg),
                "train": asdict(self.cfg),
            },
            sort_keys=True,
        )

    def state(self) -> dict:
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "rng": torch.get_rng_state(),
            "generator": self.generator.get_state(),
            "counters": {"steps": self.steps, "hours": self.hours},
            "config": self.fingerprint(),
        }

    def load_state(self, state: dict) -> None:
        require_same_config(state["config"], self.fingerprint())
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        self.generator.set_state(state["generator"])
        self.steps, self.hours = state["counters"]["steps"], state["counters"]["hours"]

    @torch.no_grad()
    def predict(self, batch: ContentBatch) -> torch.Tensor:
        """Predicted CTR (N, W) of every window, by the model as it stands."""
        self.model.eval()
        out = []
        for lo in range(0, batch.size, 512):
            b = batch.take(torch.arange(lo, min(lo + 512, batch.size))).to(self.device)
            rows = self.model.streamer_rows(b.streamer_id)
            out.append(torch.sigmoid(self.model(b.visual, b.text, rows)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.model_cfg.window)

    def _lr(self) -> float:
        if self.cfg.schedule == "constant":
            return self.cfg.lr
        progress = min(self.steps / max(self.cfg.horizon_steps, 1), 1.0)
        return 0.5 * self.cfg.lr * (1.0 + math.cos(math.pi * progress))

    def train_hour(self, batch: ContentBatch) -> dict:
        """Train on one hour's windows; -> the hour's mean losses and step count."""
        self.model.train()
        totals = {"loss": 0.0, "point": 0.0, "pair": 0.0, "align": 0.0}
        steps = 0
        for _ in range(self.cfg.epochs):
            order = torch.randperm(batch.size, generator=self.generator)
            for lo in range(0, batch.size, self.cfg.batch_size):
                b = batch.take(order[lo : lo + self.cfg.batch_size]).to(self.device)
                rows = self.model.streamer_rows(b.streamer_id)
                logits, s_p, s_a = self.model.forward_train(b.visual, b.text, rows)
                loss, parts = content_ctr_loss(
                    self.loss_cfg, logits, b.y, b.m, s_p, s_a, self.generator
                )
                for group in self.opt.param_groups:
                    group["lr"] = self._lr()
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
                self.opt.step()
                self.steps += 1
                steps += 1
                totals["loss"] += loss.item()
                for k in ("point", "pair", "align"):
                    totals[k] += parts[k].item()
        self.hours += 1
        return {k: v / max(steps, 1) for k, v in totals.items()} | {"steps": steps}
