"""Checkpoints as bytes: ``torch.save`` of tensors, numbers and strings only, read back
with ``torch.load(weights_only=True)`` (no pickle of arbitrary objects from storage)."""

from __future__ import annotations

import io

import torch

CHECKPOINT_FILE = "checkpoint.pt"


def checkpoint_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_checkpoint(data: bytes) -> dict:
    """The state saved by ``checkpoint_bytes``; anything else than tensors, numbers,
    strings and containers of them is refused by the weights-only unpickler."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def require_same_config(saved: str, current: str) -> None:
    """A checkpoint only resumes the run that wrote it: its configuration text must be this
    run's, else one error showing both."""
    if saved != current:
        raise ValueError(
            "checkpoint was trained with another configuration:\n"
            f"  checkpoint: {saved}\n  this run:   {current}"
        )
