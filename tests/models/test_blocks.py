"""Blocks: hashing, MLP, target attention (the ESU) and its pooling core, the input
contract's helpers."""

import dataclasses

import numpy as np
import pytest
import torch

from ml.models.attention import attend_and_mean, attend_and_mean_reference
from ml.models.blocks import (
    MLP,
    HashedEmbedding,
    HashedEmbeddingConfig,
    MLPConfig,
    TargetAttention,
    TargetAttentionConfig,
    _fmix32,
    _fmix32_int,
    _mul32,
    hash_ids,
    masked_mean,
)
from ml.models.inputs import N_GAP_BUCKETS, gap_buckets, random_inputs
from ml.schema import GSUS

M32 = 0xFFFFFFFF


# ---- hashing ------------------------------------------------------------------------------


def test_mul32_is_exact_mod_2_32():
    g = torch.Generator().manual_seed(0)
    h = torch.cat([torch.randint(0, 1 << 32, (10_000,), generator=g), torch.tensor([0, M32])])
    for c in (0x85EBCA6B, 0xC2B2AE35, 0x9E3779B1, M32, 1):
        got = _mul32(h, c).tolist()
        assert got == [(int(v) * c) & M32 for v in h.tolist()]


def test_fmix32_matches_python_reference():
    vals = [0, 1, 2, 12345, M32, 0x80000000]
    assert _fmix32(torch.tensor(vals)).tolist() == [_fmix32_int(v) for v in vals]


def test_hash_ids_range_padding_and_determinism():
    ids = torch.tensor([0, 1, 2, -1, -(1 << 62), (1 << 62) + 5, 1 << 40, 7])
    rows = hash_ids(ids, 1000)
    assert rows[0] == 0
    assert ((rows[1:] >= 1) & (rows[1:] < 1000)).all()
    assert torch.equal(rows, hash_ids(ids.clone(), 1000))
    assert hash_ids(ids.view(2, 4), 1000).shape == (2, 4)
    # Ids differing only in their upper 32 bits must not collide systematically.
    hi = torch.arange(1, 1001, dtype=torch.int64) << 32
    assert hash_ids(hi, 1 << 20).unique().numel() > 990


def test_hash_ids_salt_changes_collisions_and_spreads_rows():
    ids = torch.arange(1, 200_001, dtype=torch.int64)
    a, b = hash_ids(ids, 101), hash_ids(ids, 101, salt=1)
    assert not torch.equal(a, b)
    counts = torch.bincount(a, minlength=101)[1:].double()
    # Sequential ids spread evenly over the 100 real rows (expected 2000 each).
    assert counts.min() > 1700 and counts.max() < 2300


def test_hashed_embedding_shapes_and_padding_row():
    torch.manual_seed(0)
    emb = HashedEmbedding(HashedEmbeddingConfig(num_rows=64, dim=8))
    ids = torch.tensor([[0, 5, 9], [3, 0, 0]])
    out = emb(ids)
    assert out.shape == (2, 3, 8)
    assert torch.equal(out[ids == 0], torch.zeros(3, 8))
    assert out[0, 1].abs().sum() > 0
    with pytest.raises(ValueError):
        hash_ids(ids, 1)


# ---- MLP ----------------------------------------------------------------------------------


def test_mlp_shapes_and_final_activation():
    torch.manual_seed(0)
    x = torch.randn(32, 10)
    relu_out = MLP(MLPConfig(10, (16, 4)))(x)
    assert relu_out.shape == (32, 4) and (relu_out >= 0).all()
    logits = MLP(MLPConfig(10, (16, 4), final_activation=False, dropout=0.5)).eval()(x)
    assert (logits < 0).any()
    with pytest.raises(ValueError):
        MLP(MLPConfig(10, (4,), activation="nope"))


# ---- target attention ---------------------------------------------------------------------


def reference_attention(att: TargetAttention, query, keys, mask):
    """Textbook MHA with one query: project every key and value, mask, softmax, pool."""
    cfg = att.cfg
    b, g = keys.shape[:2]
    h, dh = cfg.n_heads, cfg.head_dim
    outs = []
    for gi in range(g):
        q = (query @ att.w_q[gi] + att.b_q[gi]).view(b, h, dh)
        k = torch.einsum("bld,hde->bhle", keys[:, gi], att.w_k[gi])
        v = torch.einsum("bld,hde->bhle", keys[:, gi], att.w_v[gi]) + att.b_v[gi][None, :, None]
        s = torch.einsum("bhe,bhle->bhl", q, k) / dh**0.5
        s = s.masked_fill(~mask[:, gi, None, :], float("-inf"))
        a = torch.softmax(s, dim=-1)
        o = torch.einsum("bhl,bhle->bhe", a, v).reshape(b, h * dh) @ att.w_o[gi] + att.b_o[gi]
        outs.append(o)
    return torch.stack(outs, dim=1)


def _attention_case(b=6, g=3, n=7, dq=5, dk=8, seed=0):
    torch.manual_seed(seed)
    att = TargetAttention(TargetAttentionConfig(d_query=dq, d_key=dk, n_heads=2, n_groups=g))
    query, keys = torch.randn(b, dq), torch.randn(b, g, n, dk)
    mask = torch.rand(b, g, n) < 0.6
    mask[:, :, 0] = True  # at least one real item: the textbook version NaNs otherwise
    return att, query, keys, mask


def test_target_attention_equals_textbook_mha():
    att, query, keys, mask = _attention_case()
    got = att(query, keys, mask)
    assert got.shape == (6, 3, 8)
    torch.testing.assert_close(got, reference_attention(att, query, keys, mask))


def test_target_attention_single_group_shapes():
    torch.manual_seed(0)
    att = TargetAttention(TargetAttentionConfig(d_query=4, d_key=6, n_heads=3, d_out=5))
    out = att(torch.randn(2, 4), torch.randn(2, 9, 6), torch.ones(2, 9, dtype=torch.bool))
    assert out.shape == (2, 5)


def test_target_attention_ignores_padded_items_exactly():
    att, query, keys, mask = _attention_case()
    noisy = torch.where(mask.unsqueeze(-1), keys, torch.randn_like(keys) * 100)
    assert torch.equal(att(query, keys, mask), att(query, noisy, mask))


def test_target_attention_empty_sequence_gives_zeros_and_finite_grad():
    att, query, keys, mask = _attention_case()
    mask[1] = False  # every group of sample 1 empty
    mask[2, 0] = False  # one group of sample 2 empty
    keys.requires_grad_(True)
    out = att(query, keys, mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert torch.equal(out[2, 0], torch.zeros_like(out[2, 0]))
    assert out[2, 1].abs().sum() > 0
    out.sum().backward()
    assert torch.isfinite(keys.grad).all()
    assert torch.equal(keys.grad[1], torch.zeros_like(keys.grad[1]))
    assert all(torch.isfinite(p.grad).all() for p in att.parameters())


def test_target_attention_groups_are_independent():
    att, query, keys, mask = _attention_case()
    other = keys.clone()
    other[:, 1] += 1.0
    a, b = att(query, keys, mask), att(query, other, mask)
    assert torch.equal(a[:, 0], b[:, 0]) and torch.equal(a[:, 2], b[:, 2])
    assert not torch.allclose(a[:, 1], b[:, 1])


def test_masked_mean_empty_is_zero():
    x = torch.randn(2, 3, 4)
    m = torch.tensor([[True, False, True], [False, False, False]])
    mean, count = masked_mean(x, m)
    torch.testing.assert_close(mean[0], (x[0, 0] + x[0, 2]) / 2)
    assert torch.equal(mean[1], torch.zeros(4)) and count.tolist() == [2.0, 0.0]


# ---- inputs -------------------------------------------------------------------------------


def test_gap_buckets_boundaries():
    gaps = np.array([-5, 0, 999, 1000, 1999, 2000, 3999, 4000, 7999, 8000, 10**15])
    assert gap_buckets(gaps).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, N_GAP_BUCKETS - 1]
    big = np.array([1000 * (1 << k) for k in range(30)])
    want = np.minimum(np.arange(30) + 1, N_GAP_BUCKETS - 1)
    assert np.array_equal(gap_buckets(big), want)
    assert np.array_equal(gap_buckets(big - 1)[1:], np.minimum(np.arange(1, 30), N_GAP_BUCKETS - 1))
    g = np.random.default_rng(0).integers(0, 10**11, size=(4, 5, 6))
    out = gap_buckets(g)
    assert out.shape == g.shape and out.dtype == np.int64
    order = np.argsort(g.ravel())
    assert (np.diff(out.ravel()[order]) >= 0).all()


def test_random_inputs_follow_the_contract():
    x = random_inputs(16, seq_len=10, n_content=20, seed=3)
    x.validate()
    assert x.batch_size == 16 and x.seq_mask.shape == (16, len(GSUS), 10)
    pad = ~x.seq_mask
    assert pad.any() and x.seq_mask.any() and (~x.seq_mask.any(-1)).any()
    for t in (x.seq_item, x.seq_author, x.seq_category, x.seq_row, x.seq_gap, x.seq_action):
        assert (t[pad] == 0).all()
    assert torch.equal(x.content_table[0], torch.zeros(x.content_table.shape[1]))
    assert torch.equal(random_inputs(4, seed=1).seq_item, random_inputs(4, seed=1).seq_item)
    sub = x.select(torch.tensor([3, 5]))
    assert sub.batch_size == 2 and torch.equal(sub.seq_item[1], x.seq_item[5])
    assert sub.content_table is x.content_table
    assert x.to("cpu").user_id.device.type == "cpu"
    with pytest.raises(ValueError):
        dataclasses.replace(sub, seq_mask=sub.seq_mask.long()).validate()
    with pytest.raises(ValueError):
        dataclasses.replace(sub, room_row=x.room_row).validate()  # wrong batch size


# ---- attend_and_mean: the written-out backward against autograd's ----------------------------


def _pooling_case(n=12, h=2, length=9, d=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    qk = torch.randn(n, h, d, generator=g, dtype=dtype, requires_grad=True)
    keys = torch.randn(n, length, d, generator=g, dtype=dtype, requires_grad=True)
    mask = torch.rand(n, length, generator=g) < 0.6
    mask[0] = False  # an empty sequence
    mask[1] = True  # a full one
    return qk, keys, mask


def test_attend_and_mean_equals_its_autograd_twin_values_and_gradients():
    qk, keys, mask = _pooling_case()
    pooled, mean = attend_and_mean(qk, keys, mask)
    ref_pooled, ref_mean = attend_and_mean_reference(qk, keys, mask)
    torch.testing.assert_close(pooled, ref_pooled)
    torch.testing.assert_close(mean, ref_mean)
    real = mask.to(keys.dtype)
    torch.testing.assert_close(
        mean[1:], (keys * real[..., None]).sum(1)[1:] / real.sum(1)[1:, None]
    )
    assert torch.equal(mean[0], torch.zeros_like(mean[0]))
    g = torch.Generator().manual_seed(1)
    w_p, w_m = torch.randn(pooled.shape, generator=g), torch.randn(mean.shape, generator=g)

    def grads(fn):
        p, m = fn(qk, keys, mask)
        return torch.autograd.grad((p * w_p).sum() + (m * w_m).sum(), (qk, keys))

    for got, want in zip(grads(attend_and_mean), grads(attend_and_mean_reference), strict=True):
        torch.testing.assert_close(got, want)


def test_attend_and_mean_gradcheck_and_padded_items_get_no_gradient():
    qk, keys, mask = _pooling_case(n=4, length=6, d=3)
    assert torch.autograd.gradcheck(lambda q, k: attend_and_mean(q, k, mask), (qk, keys))
    pooled, mean = attend_and_mean(qk, keys, mask)
    (grad_keys,) = torch.autograd.grad(pooled[1:].sum() + mean.sum(), keys)
    assert torch.equal(grad_keys[~mask], torch.zeros_like(grad_keys[~mask]))


def test_attend_and_mean_under_bf16_autocast_runs_in_bf16_with_finite_gradients():
    qk, keys, mask = _pooling_case(dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled, mean = attend_and_mean(qk, keys, mask)
    assert pooled.dtype == mean.dtype == torch.bfloat16
    (pooled.float().sum() + mean.float().sum()).backward()
    assert qk.grad.dtype == keys.grad.dtype == torch.float32
    assert torch.isfinite(qk.grad).all() and torch.isfinite(keys.grad).all()
    ref_pooled, _ = attend_and_mean_reference(qk.detach(), keys.detach(), mask)
    torch.testing.assert_close(pooled.float(), ref_pooled, atol=0.05, rtol=0.05)


def test_target_attention_mean_is_the_masked_mean_of_the_keys():
    att, query, keys, mask = _attention_case()
    out, mean = att(query, keys, mask, with_mean=True)
    assert torch.equal(out, att(query, keys, mask))
    want, _ = masked_mean(keys, mask)
    torch.testing.assert_close(mean, want)
