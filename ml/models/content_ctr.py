"""ContentCTR (DESIGN §7.4; ``reference/content_ctr_paper.txt`` §3.2): segment-level CTR of
a live room from its multimodal content.

    visual (B, W, Fv), text (B, W, Ft), streamer rows (B,) -> logits (B, W)

B = windows, W = segments per window (20 of 30 s), d = model width. Per segment a frame
token S_p = proj1(visual) and a text token S_a = proj2(text) (two MLP heads, eq. 2); a
fusion block turns [S_p, S_a] and the streamer's id embedding E_u into one vector per
segment (the Perceiver by default; the paper's Table 1 variants selectable); a causal
self-attention decoder over the W segments (segment t sees segments <= t only, eq. 5);
a linear head. ``forward_train`` also returns S_p and S_a for the DTW alignment loss
(``ml.models.content_losses``).

Fusion variants (Table 1), L layers each, every layer attention + FFN with residuals:
- ``perceiver``: latent x = E_u; x += attn(q=x, kv=[S_p, S_a, x]) (Algorithm 1).
- ``self_attention_plain``: no E_u; self-attention over [S_p, S_a], mean of the tokens.
- ``self_attention_input``: self-attention over [S_p, S_a, E_u], mean of the tokens.
- ``cross_attention_q``: every layer's query is E_u itself: x += attn(q=E_u, kv=[S_p, S_a]).
- ``cross_attention_kv``: tokens [S_p, S_a] query E_u: t += attn(q=t, kv=E_u), mean of t.
- ``cross_attention_qkv``: x = E_u carried: x += attn(q=x, kv=[S_p, S_a]) — the
  Perceiver without the latent among its keys.
Table 3's ablations drop the visual or the text token, or the id (``use_streamer`` False:
the latent is one learned vector shared by every streamer).

The paper's pseudocode shows no normalisation; every sub-layer here is pre-LayerNorm
(as Perceiver and most transformers since), without which 3 + 3 layers train unstably.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ml.models.blocks import hash_ids
from ml.schema import EMBED_DIM, FRAMES_PER_SEGMENT

FUSIONS = (
    "perceiver",
    "self_attention_plain",
    "self_attention_input",
    "cross_attention_q",
    "cross_attention_kv",
    "cross_attention_qkv",
)


@dataclass(frozen=True)
class ContentCTRConfig:
    visual_dim: int = FRAMES_PER_SEGMENT * EMBED_DIM  # widths come from the data
    text_dim: int = 2 * EMBED_DIM  # ASR + comment
    streamer_rows: int = 1 << 14  # hashed streamer-id table (row 0: unknown)
    d: int = 64  # the paper: 512 (on 8 V100s)
    n_heads: int = 4  # the paper: 8 of 64
    fusion_layers: int = 3  # the paper: 3
    decoder_layers: int = 3  # the paper: 3
    ffn_mult: int = 4
    dropout: float = 0.0
    window: int = 20  # segments per window
    fusion: str = "perceiver"
    use_visual: bool = True
    use_text: bool = True
    use_streamer: bool = True
    prior_ctr: float | None = None  # initial head bias = logit(prior_ctr)

    def __post_init__(self):
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion {self.fusion!r}: one of {FUSIONS}")
        if not (self.use_visual or self.use_text):
            raise ValueError("at least one of use_visual, use_text")
        if self.d % self.n_heads:
            raise ValueError("d must be a multiple of n_heads")


class MultiHeadAttention(nn.Module):
    """q (N, Lq, d), kv (N, Lk, d), optional bool mask (Lq, Lk) True = may attend
    -> (N, Lq, d). torch's fused scaled_dot_product_attention does the softmax."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)

    def forward(self, q, kv, causal: bool = False):
        n, lq, d = q.shape
        h = self.n_heads
        k, v = self.kv(kv).chunk(2, dim=-1)

        def heads(t):
            return t.view(n, -1, h, d // h).transpose(1, 2)  # (N, H, L, d/H)

        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(
            heads(self.q(q)), heads(k), heads(v), dropout_p=p, is_causal=causal
        )
        return self.out(y.transpose(1, 2).reshape(n, lq, d))


class AttentionLayer(nn.Module):
    """x += attn(LN(x), LN(context)); x += FFN(LN(x)). x (N, Lq, d), context (N, Lk, d).
    A self-attention layer (``cross`` False) attends to x itself (``causal`` for the
    decoder); ``query`` (N, Lq, d) attends with it instead of x (x takes the residual)."""

    def __init__(self, cfg: ContentCTRConfig, cross: bool):
        super().__init__()
        d = cfg.d
        self.norm_q, self.norm_ffn = nn.LayerNorm(d), nn.LayerNorm(d)
        self.norm_kv = nn.LayerNorm(d) if cross else None
        self.attn = MultiHeadAttention(d, cfg.n_heads, cfg.dropout)
        self.ffn = nn.Sequential(
            nn.Linear(d, cfg.ffn_mult * d),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.ffn_mult * d, d),
        )

    def forward(self, x, context=None, causal: bool = False, query=None):
        q = self.norm_q(x if query is None else query)
        kv = q if self.norm_kv is None else self.norm_kv(context)
        x = x + self.attn(q, kv, causal=causal)
        return x + self.ffn(self.norm_ffn(x))


class Fusion(nn.Module):
    """Per segment tokens (N, T, d) (T = 1 or 2: frame, text) and the latent (N, 1, d)
    -> (N, d). N = B x W segments, fused independently of each other."""

    def __init__(self, cfg: ContentCTRConfig):
        super().__init__()
        self.kind = cfg.fusion
        cross = not cfg.fusion.startswith("self_attention")
        self.layers = nn.ModuleList(AttentionLayer(cfg, cross) for _ in range(cfg.fusion_layers))
        self.norm = nn.LayerNorm(cfg.d)

    def forward(self, tokens: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        kind = self.kind
        if kind in ("self_attention_plain", "self_attention_input"):
            x = tokens if kind == "self_attention_plain" else torch.cat([tokens, latent], 1)
            for layer in self.layers:
                x = layer(x)
            return self.norm(x.mean(1))
        if kind == "cross_attention_kv":
            x = tokens
            for layer in self.layers:
                x = layer(x, context=latent)
            return self.norm(x.mean(1))
        x = latent
        for layer in self.layers:
            if kind == "perceiver":
                x = layer(x, context=torch.cat([tokens, x], 1))
            elif kind == "cross_attention_q":
                x = layer(x, context=tokens, query=latent)
            else:  # cross_attention_qkv
                x = layer(x, context=tokens)
        return self.norm(x.squeeze(1))


class ContentCTR(nn.Module):
    """visual (B, W, Fv), text (B, W, Ft), streamer (B,) raw ids or table rows -> (B, W)."""

    def __init__(self, cfg: ContentCTRConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d

        def head(width: int) -> nn.Module:  # the paper's MLP heads proj1, proj2
            return nn.Sequential(nn.Linear(width, d), nn.GELU(), nn.Linear(d, d))

        self.proj_visual = head(cfg.visual_dim) if cfg.use_visual else None
        self.proj_text = head(cfg.text_dim) if cfg.use_text else None
        if cfg.use_streamer:
            self.streamer = nn.Embedding(cfg.streamer_rows, d)
            nn.init.normal_(self.streamer.weight, std=0.02)
        else:
            self.latent = nn.Parameter(torch.randn(d) * 0.02)
        self.fusion = Fusion(cfg)
        self.position = nn.Parameter(torch.randn(cfg.window, d) * 0.02)
        self.decoder = nn.ModuleList(
            AttentionLayer(cfg, cross=False) for _ in range(cfg.decoder_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, 1)
        if cfg.prior_ctr is not None:
            with torch.no_grad():
                p = torch.tensor(cfg.prior_ctr).clamp(1e-6, 1 - 1e-6)
                self.out.bias.fill_(torch.logit(p).item())

    def streamer_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Table rows of raw streamer ids (the loader calls it once per window)."""
        return hash_ids(ids, self.cfg.streamer_rows, salt=11)

    def forward_train(self, visual, text, streamer_rows):
        """-> (logits (B, W), S_p (B, W, d) or None, S_a (B, W, d) or None)."""
        cfg = self.cfg
        b, w = visual.shape[:2]
        if w > cfg.window:
            raise ValueError(f"{w} segments per window; the model holds {cfg.window}")
        s_p = self.proj_visual(visual) if self.proj_visual is not None else None
        s_a = self.proj_text(text) if self.proj_text is not None else None
        tokens = torch.stack([t for t in (s_p, s_a) if t is not None], dim=2)  # (B, W, T, d)
        e_u = self.streamer(streamer_rows) if cfg.use_streamer else self.latent.expand(b, -1)
        latent = e_u.unsqueeze(1).expand(b, w, -1).reshape(b * w, 1, cfg.d)
        x = self.fusion(tokens.reshape(b * w, tokens.shape[2], cfg.d), latent)
        x = x.view(b, w, cfg.d) + self.position[:w]
        for layer in self.decoder:
            x = layer(x, causal=True)  # segment t attends to segments <= t
        return self.out(self.norm(x)).squeeze(-1), s_p, s_a

    def forward(self, visual, text, streamer_rows) -> torch.Tensor:
        """-> logits (B, W) of each segment's CTR."""
        return self.forward_train(visual, text, streamer_rows)[0]
