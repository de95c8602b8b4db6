"""The trainer's host-memory setting applies on this glibc machine, once per process, and
the trainer takes it (its speed effect is measured in bench/train.py, not asserted)."""

from ml.train import host_memory
from ml.train.stream import StreamTrainer, TrainConfig
from ml.train.variants import BASE_MODEL


def test_glibc_accepts_the_setting_once_per_process():
    assert host_memory.keep_freed_memory() is True
    assert host_memory.keep_freed_memory() is True
    assert host_memory.keep_freed_memory.cache_info().misses == 1


def test_the_trainer_applies_it(monkeypatch):
    calls = []
    monkeypatch.setattr("ml.train.stream.keep_freed_memory", lambda: calls.append(1))
    StreamTrainer(BASE_MODEL, TrainConfig())
    assert calls == [1]
