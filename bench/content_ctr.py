"""ContentCTR throughput: windows/s of training (forward, the full loss of eq. 14 with the
soft-DTW alignment over 1 + 8 candidates, backward, Adam) and of inference, CPU (2 threads)
or a GPU (bf16 autocast).

peer: the same network from stock torch blocks, same widths, same batches: the Perceiver
layers as ``nn.MultiheadAttention`` + FFN with pre-LayerNorm, the causal decoder as
``nn.TransformerEncoder`` (``norm_first``, a causal mask; the decoder has no cross-attention,
so torch's encoder layer is its stock form), the same projection heads and the same loss.
params: soft-DTW forward + backward at n = 20 (a window) and n = 192 against tslearn's
``SoftDTWLossPyTorch`` on the same cosine costs (batch 64).

    python bench/content_ctr.py [--batch 48] [--steps 10] [--d 64] [--device cpu]
    python bench/content_ctr.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _rounds import interleaved_rates

from ml.models.content_ctr import ContentCTR, ContentCTRConfig
from ml.models.content_losses import ContentLossConfig, content_ctr_loss
from ml.models.soft_dtw import cosine_cost, soft_dtw


class StockContentCTR(nn.Module):
    """ContentCTR's structure from stock torch.nn blocks (the peer)."""

    def __init__(self, cfg: ContentCTRConfig):
        super().__init__()
        d, h = cfg.d, cfg.n_heads
        self.cfg = cfg

        def head(width):
            return nn.Sequential(nn.Linear(width, d), nn.GELU(), nn.Linear(d, d))

        self.proj_visual, self.proj_text = head(cfg.visual_dim), head(cfg.text_dim)
        self.streamer = nn.Embedding(cfg.streamer_rows, d)
        self.attn = nn.ModuleList(
            nn.MultiheadAttention(d, h, batch_first=True) for _ in range(cfg.fusion_layers)
        )
        self.norms = nn.ModuleList(
            nn.ModuleList(nn.LayerNorm(d) for _ in range(3)) for _ in range(cfg.fusion_layers)
        )
        self.ffn = nn.ModuleList(
            nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
            for _ in range(cfg.fusion_layers)
        )
        self.fusion_norm = nn.LayerNorm(d)
        layer = nn.TransformerEncoderLayer(
            d, h, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerEncoder(layer, cfg.decoder_layers, enable_nested_tensor=False)
        self.position = nn.Parameter(torch.zeros(cfg.window, d))
        self.norm, self.out = nn.LayerNorm(d), nn.Linear(d, 1)

    def forward_train(self, visual, text, rows):
        b, w = visual.shape[:2]
        d = self.cfg.d
        s_p, s_a = self.proj_visual(visual), self.proj_text(text)
        tokens = torch.stack([s_p, s_a], 2).reshape(b * w, 2, d)
        x = self.streamer(rows).unsqueeze(1).expand(b, w, d).reshape(b * w, 1, d)
        for attn, (nq, nkv, nf), ffn in zip(self.attn, self.norms, self.ffn, strict=True):
            q = nq(x)
            kv = nkv(torch.cat([tokens, x], 1))
            x = x + attn(q, kv, kv, need_weights=False)[0]
            x = x + ffn(nf(x))
        x = self.fusion_norm(x.squeeze(1)).view(b, w, d) + self.position[:w]
        mask = nn.Transformer.generate_square_subsequent_mask(w, device=x.device)
        x = self.decoder(x, mask=mask, is_causal=True)
        return self.out(self.norm(x)).squeeze(-1), s_p, s_a


def batches(cfg, n, b, seed, device):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        visual = torch.randn(b, cfg.window, cfg.visual_dim, generator=g)
        text = torch.randn(b, cfg.window, cfg.text_dim, generator=g)
        rows = torch.randint(1, cfg.streamer_rows, (b,), generator=g)
        y = torch.rand(b, cfg.window, generator=g) * 0.3
        m = torch.rand(b, cfg.window, generator=g) < 0.9
        out.append(tuple(t.to(device) for t in (visual, text, rows, y, m)))
    return out


def soft_dtw_ms(n: int, device, reps: int) -> dict:
    from tslearn.metrics import SoftDTWLossPyTorch

    g = torch.Generator().manual_seed(n)
    x = torch.randn(64, n, 16, generator=g).to(device).requires_grad_(True)
    y = torch.randn(64, n, 16, generator=g).to(device)
    theirs = SoftDTWLossPyTorch(gamma=0.1, dist_func=cosine_cost)

    def ours_step():
        soft_dtw(cosine_cost(x, y), 0.1).sum().backward()

    def theirs_step():
        theirs(x, y).sum().backward()

    out = {}
    for name, fn in (("ours", ours_step), ("tslearn", theirs_step)):
        fn()  # tslearn compiles its numba kernels on first use
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            best = min(best, (time.perf_counter() - t) / reps)
        out[name] = round(best * 1e3, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=48)  # the paper's global batch
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.warmup, args.repeat = 2, 1, 1
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    cfg = ContentCTRConfig(d=args.d, n_heads=max(1, args.d // 16))
    loss_cfg = ContentLossConfig()
    torch.manual_seed(0)
    ours, peer = ContentCTR(cfg).to(dev), StockContentCTR(cfg).to(dev)
    opts = {m: torch.optim.Adam(m.parameters(), lr=5e-5) for m in (ours, peer)}
    data = batches(cfg, 4, args.batch, 0, dev)
    gen = torch.Generator().manual_seed(1)

    def train(model):
        def step(b):
            visual, text, rows, y, m = b
            model.train()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
                logits, s_p, s_a = model.forward_train(visual, text, rows)
            loss, _ = content_ctr_loss(loss_cfg, logits.float(), y, m, s_p, s_a, gen)
            opts[model].zero_grad(set_to_none=True)
            loss.backward()
            opts[model].step()

        return step

    def infer(model):
        def step(b):
            model.eval()
            with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
                model.forward_train(*b[:3])

        return step

    b = args.batch
    jobs = [
        (train(ours), data, b),
        (train(peer), data, b),
        (infer(ours), data, b),
        (infer(peer), data, b),
    ]
    r = interleaved_rates(jobs, args.steps, args.warmup, args.repeat, sync)
    tr, tr_peer, inf, inf_peer = (float(np.median(x)) for x in r)
    ratio = float(np.median(np.array(r[0]) / np.array(r[1])))
    dtw = {f"n{n}": soft_dtw_ms(n, dev, 1 if args.quick else 3) for n in (20, 192)}
    out = {
        "name": "content_ctr", "value": round(tr, 1), "unit": "windows/s",
        "peer": "stock_torch_nn_blocks", "peer_value": round(tr_peer, 1), "ratio": round(ratio, 2),
        "params": {
            "batch": args.batch, "window": cfg.window, "d": cfg.d, "heads": cfg.n_heads,
            "layers": [cfg.fusion_layers, cfg.decoder_layers],
            "timing": f"median of {args.repeat} interleaved rounds of {args.steps} steps",
            "inference_windows_per_s": round(inf, 1),
            "peer_inference_windows_per_s": round(inf_peer, 1),
            "soft_dtw_fwd_bwd_ms_batch64": dtw,
            "device": str(dev) + (f" {torch.cuda.get_device_name()}" if cuda else ""),
            "amp": "bf16" if cuda else "off", "threads": args.threads,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "cpus": os.cpu_count(),
        },
    }  # fmt: skip
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
