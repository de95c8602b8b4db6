"""Device resource: where models train, chosen by ``LIVECROSS_DEVICE`` (auto | cpu | cuda)."""

from __future__ import annotations

import os

import dagster as dg
import torch


class Device(dg.ConfigurableResource):
    """``auto`` takes CUDA when a GPU is visible, else the CPU; ``cuda`` insists on it.
    On CUDA the trainer runs bf16 autocast with pinned host batches and non-blocking copies."""

    kind: str = "auto"
    cpu_threads: int = 0  # 0: leave torch's default

    def torch_device(self) -> torch.device:
        if self.kind not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device kind {self.kind!r}: one of auto, cpu, cuda")
        if self.kind == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("LIVECROSS_DEVICE=cuda but torch sees no CUDA device")
        if self.cpu_threads:
            torch.set_num_threads(self.cpu_threads)
        use_cuda = self.kind == "cuda" or (self.kind == "auto" and torch.cuda.is_available())
        return torch.device("cuda" if use_cuda else "cpu")


def device_from_env() -> Device:
    return Device(kind=os.environ.get("LIVECROSS_DEVICE", "auto"))
