"""Streaming training on simulated hours through the real data layer: progressive
validation (scores equal those of a model that saw only earlier samples), exact resume
from checkpoint bytes, determinism, the training modes, and safe checkpoint loading."""

import dataclasses
import io
import pickle

import numpy as np
import pytest
import torch

from ml.cross.catalog_view import read_catalog
from ml.hours import HOUR_MS
from ml.io.lake import partition_dir
from ml.models.ranking import MomentCrossConfig
from ml.quality.models import PROGRESSIVE_COUNTERS, progressive_frame
from ml.train.checkpoint import checkpoint_bytes, load_checkpoint
from ml.train.hour_data import hour_data
from ml.train.publish import LakeHourReader
from ml.train.stream import HourData, StreamTrainer, TrainConfig
from ml.train.tensors import SampleRows
from tests.model_helpers import H0, hour_keys, pipeline_lake

pytestmark = pytest.mark.slow
SMALL = MomentCrossConfig(
    user_rows=1 << 10, room_rows=1 << 8, author_rows=1 << 8, item_rows=1 << 12,
    seq_author_rows=1 << 10, expert_dims=(32, 16), tower_dims=(8,),
)  # fmt: skip


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return pipeline_lake(str(tmp_path_factory.mktemp("train") / "home"), 3, 400, seed=5)


def data_of(lake, i: int, train: TrainConfig, model: MomentCrossConfig = SMALL) -> HourData:
    keys = hour_keys(i + 1)
    catalog = read_catalog(lake, partition_dir("content_catalog", keys[i]))  # as of hour i
    return hour_data(LakeHourReader(lake), H0 + i * HOUR_MS, keys[i], keys, catalog, model, train)


def state_equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]) and (
        checkpoint_bytes(a) == checkpoint_bytes(b)
    )


def test_resume_from_checkpoint_bytes_is_exact(lake):
    cfg = TrainConfig(seed=3, batch_size=64)
    one_go = StreamTrainer(SMALL, cfg)
    one_go.run_hour(data_of(lake, 0, cfg))
    want = one_go.run_hour(data_of(lake, 1, cfg))

    first = StreamTrainer(SMALL, cfg)
    first.run_hour(data_of(lake, 0, cfg))
    saved = checkpoint_bytes(first.state())
    del first
    resumed = StreamTrainer(SMALL, cfg)
    resumed.load_state(load_checkpoint(saved))
    got = resumed.run_hour(data_of(lake, 1, cfg))
    assert got.predictions.equals(want.predictions)
    assert state_equal(resumed.state(), one_go.state())
    assert resumed.counters == one_go.counters and resumed.counters.hours == 2


def test_same_seed_same_bytes_other_seed_other_model(lake):
    def run(seed):
        t = StreamTrainer(SMALL, TrainConfig(seed=seed))
        res = t.run_hour(data_of(lake, 0, t.cfg))
        return checkpoint_bytes(t.state()), res.predictions

    a, pa_ = run(1)
    b, pb = run(1)
    c, _ = run(2)
    assert a == b and pa_.equals(pb)
    assert a != c


def test_each_score_comes_from_the_model_before_the_chunk_of_its_t0(lake):
    """Predictions of chunk c equal those of a replay of only the samples emitted before
    H + c·Δ: the model that scored them had seen nothing later."""
    cfg = TrainConfig(seed=4, batch_size=32, chunk_ms=600_000)
    full = StreamTrainer(SMALL, cfg).run_hour(data_of(lake, 1, cfg)).predictions
    hour = H0 + HOUR_MS
    chunks = full.column("chunk").to_numpy()
    c = int(np.median(chunks[chunks > 0]))
    data = data_of(lake, 1, cfg)
    cut = hour + c * cfg.chunk_ms
    data.samples = [
        SampleRows(s.stream, s.row[keep], s.emit_ms[keep], s.y[keep], s.m[keep])
        for s in data.samples
        for keep in [s.emit_ms < cut]
    ]
    partial = StreamTrainer(SMALL, cfg).run_hour(data).predictions
    sel = chunks == c
    for col in ("exposure_id", "p_click", "p_gift", "model_samples"):
        assert partial.column(col).to_numpy(zero_copy_only=False)[sel].tolist() == (
            full.column(col).to_numpy(zero_copy_only=False)[sel].tolist()
        )
    t0 = full.column("t0_ms").to_numpy()
    assert (full.column("model_max_emit_ms").to_numpy() <= t0).all()
    assert ((t0 - hour) // cfg.chunk_ms == chunks).all()


def test_progressive_frame_finds_a_prediction_that_saw_later_samples(lake):
    cfg = TrainConfig(seed=4)
    data = data_of(lake, 1, cfg)
    res = StreamTrainer(SMALL, cfg).run_hour(data)
    emitted = np.concatenate([s.emit_ms for s in data.samples])
    ex = lake.read_published(partition_dir("live_exposures", hour_keys(2)[1]))
    args = (ex.column("exposure_id").combine_chunks(), ex.column("t0_ms").to_numpy(), H0 + HOUR_MS)
    clean = progressive_frame(res.predictions, emitted, *args)
    assert all(clean[c].iloc[0] == 0 for c in PROGRESSIVE_COUNTERS)
    # claim one more sample trained than existed before the exposure's t0
    pred = res.predictions
    n = pred.column("model_samples_in_hour").to_numpy().copy()
    t0 = pred.column("t0_ms").to_numpy()
    later = np.searchsorted(np.sort(emitted), t0, side="right")  # samples emitted <= t0
    i = int(np.flatnonzero(later < len(emitted))[0])
    n[i] = later[i] + 1
    bad = pred.set_column(pred.schema.get_field_index("model_samples_in_hour"),
                          "model_samples_in_hour", [n])  # fmt: skip
    assert progressive_frame(bad, emitted, *args)["recomputed_after_later_samples"].iloc[0] == 1
    dropped = progressive_frame(pred.slice(1), emitted, *args)
    assert dropped["unscored_exposures"].iloc[0] == 1
    assert (
        progressive_frame(pred, emitted[: len(emitted) // 2], *args)[
            "more_samples_than_emitted"
        ].iloc[0]
        > 0
    )


def test_modes_train_on_their_streams_and_late_impressions_are_counted(lake):
    for mode, streams in (
        ("moment", {"moment"}),
        ("fast", {"fast"}),
        ("fast+slow", {"fast", "slow"}),
    ):
        cfg = TrainConfig(mode=mode)
        data = data_of(lake, 1, cfg)
        assert {s.stream for s in data.samples} == streams
        res = StreamTrainer(SMALL, cfg).run_hour(data)
        assert res.stats["samples"] == sum(len(s) for s in data.samples) > 0
        assert set(res.stats["samples_per_stream"]) == streams
        late = int((data.rows.t0_ms[data.score_rows] < H0 + HOUR_MS).sum())
        assert res.stats["late_not_scored"] == late
        assert res.predictions.num_rows + late == len(data.score_rows)


def test_a_checkpoint_for_another_configuration_is_refused(lake):
    cfg = TrainConfig(seed=1)
    t = StreamTrainer(SMALL, cfg)
    state = t.state()
    other = StreamTrainer(dataclasses.replace(SMALL, backbone="mmoe"), cfg)
    with pytest.raises(ValueError, match="another configuration"):
        other.load_state(state)
    with pytest.raises(ValueError, match="already trained"):
        t.counters.last_hour_ms = H0
        t.run_hour(data_of(lake, 0, cfg))


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_loading_refuses_anything_but_tensors_and_plain_values():
    buf = io.BytesIO()
    torch.save({"model": {}, "payload": Evil()}, buf)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(buf.getvalue())


def test_a_missing_lookback_partition_fails_naming_it(lake, tmp_path):
    from ml.io.store import Store
    from ml.train.publish import MissingPartitionError, train_hour

    empty = LakeHourReader(Store(str(tmp_path)))
    with pytest.raises(MissingPartitionError, match=r"live_exposures 2026-01-01-00:00 is not"):
        empty.exposures("2026-01-01-00:00")
    # hour 1 reads exposures of hour 0 too: hide hour 0's and train hour 1
    rel = partition_dir("live_exposures", hour_keys(1)[0])
    success = lake.read_bytes(f"{rel}/_SUCCESS")
    lake.delete(f"{rel}/_SUCCESS")
    try:
        t = StreamTrainer(SMALL, TrainConfig())
        with pytest.raises(MissingPartitionError, match=r"live_exposures 2026-01-01-00:00 is not"):
            train_hour(lake, t, "full-s0", H0 + HOUR_MS, hour_keys(2), H0 + HOUR_MS)
    finally:
        lake.write_bytes(f"{rel}/_SUCCESS", success)


@pytest.mark.parametrize("asset", ["content_catalog", "moment_samples"])
def test_a_failed_gate_refuses_the_hour_to_training(lake, asset):
    from ml.io.gates import FailedGateError, gate_dir, record_verdict
    from ml.train.publish import train_hour

    key = hour_keys(2)[1]
    rel = partition_dir(asset, key)
    record_verdict(lake, rel, "volume", False, "rows=3")
    try:
        t = StreamTrainer(SMALL, TrainConfig())
        with pytest.raises(
            FailedGateError, match=rf"{asset} {key} failed its blocking check 'volume'"
        ):
            train_hour(lake, t, "full-s0", H0 + HOUR_MS, hour_keys(2), H0 + HOUR_MS)
    finally:
        lake.delete(f"{gate_dir(rel)}/volume.json")
