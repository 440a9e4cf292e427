"""The cross-view decoder D: target tokens attend to themselves and to the source tokens.

As CroCo's decoder (Weinzaepfel et al., NeurIPS 2022): pre-norm blocks of self-attention over the
target tokens, cross-attention from target to source tokens, and an MLP. Both token sets carry a
2-D sine-cosine position embedding of their grid and a learned view embedding, so the decoder can
relate *where* things are in the two views, not only what they look like. Source tokens may first
pass through self-attention blocks of their own (``src_depth``): a convolutional encoder sees
only a neighbourhood, and finding *that* object among look-alikes needs the whole scene.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sincos_2d(h: int, w: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """``(h*w, dim)`` float32 2-D sine-cosine position embedding (MAE style; ``dim % 4 == 0``)."""
    if dim % 4:
        raise ValueError(f"position embedding width must be a multiple of 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float32, device=device) / quarter))
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=device),
        torch.arange(w, dtype=torch.float32, device=device),
        indexing="ij",
    )
    out = [f(c.reshape(-1, 1) * omega[None]) for c in (ys, xs) for f in (torch.sin, torch.cos)]
    return torch.cat(out, dim=1)


class Attention(nn.Module):
    """Multi-head attention (``F.scaled_dot_product_attention``); ``kv`` defaults to ``x``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        src = x if kv is None else kv
        q = self.q(x).reshape(b, n, self.heads, d // self.heads).transpose(1, 2)
        k, v = self.kv(src).reshape(b, src.shape[1], 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Sequential):
    """Linear -> GELU -> Linear."""

    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class SelfBlock(nn.Module):
    """Pre-norm transformer block: self-attention + MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CrossBlock(nn.Module):
    """Pre-norm decoder block: self-attention, cross-attention to ``memory``, MLP (CroCo)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.norm_mem, self.cross_attn = nn.LayerNorm(dim), nn.LayerNorm(dim), Attention(dim, heads)
        self.norm3, self.mlp = nn.LayerNorm(dim), Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), self.norm_mem(memory))
        return x + self.mlp(self.norm3(x))


class CrossViewDecoder(nn.Module):
    """Source and target feature maps -> decoded target tokens.

    Args:
        in_channels: encoder width ``C``.
        dim: decoder width ``D``.
        depth: decoder (cross) blocks.
        src_depth: self-attention blocks applied to the source tokens first.
        heads: attention heads.

    Shapes: :meth:`source` and :meth:`target` take ``(B, C, h, w)`` maps and return ``(B, h*w, D)``
    tokens; :meth:`forward` returns the decoded target tokens ``(B, h*w, D)``.
    """

    def __init__(self, in_channels: int, dim: int = 192, depth: int = 4, src_depth: int = 2, heads: int = 6) -> None:
        super().__init__()
        self.dim = dim
        self.src_proj = nn.Linear(in_channels, dim)
        self.tgt_proj = nn.Linear(in_channels, dim)
        self.src_view = nn.Parameter(torch.zeros(dim))
        self.tgt_view = nn.Parameter(torch.zeros(dim))
        nn.init.normal_(self.src_view, std=0.02)
        nn.init.normal_(self.tgt_view, std=0.02)
        self.src_blocks = nn.ModuleList(SelfBlock(dim, heads) for _ in range(src_depth))
        self.blocks = nn.ModuleList(CrossBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def _tokens(self, feat: torch.Tensor, proj: nn.Linear, view: torch.Tensor) -> torch.Tensor:
        b, _, h, w = feat.shape
        x = proj(feat.flatten(2).transpose(1, 2))
        return x + sincos_2d(h, w, self.dim, feat.device).to(x.dtype)[None] + view

    def source(self, feat: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Source tokens; ``extra`` ``(B, h*w, D)`` (e.g. a mask embedding) is added before the
        source blocks."""
        x = self._tokens(feat, self.src_proj, self.src_view)
        if extra is not None:
            x = x + extra
        for blk in self.src_blocks:
            x = blk(x)
        return x

    def target(self, feat: torch.Tensor) -> torch.Tensor:
        """Target tokens (before decoding)."""
        return self._tokens(feat, self.tgt_proj, self.tgt_view)

    def forward(self, tgt: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """Decodes target tokens ``(B, N, D)`` against source tokens ``(B, M, D)``."""
        x = tgt
        for blk in self.blocks:
            x = blk(x, src)
        return self.norm(x)


def init_weights(module: nn.Module) -> None:
    """Truncated-normal linear layers, unit LayerNorms (ViT/CroCo initialisation)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


__all__ = ["Attention", "CrossBlock", "CrossViewDecoder", "SelfBlock", "init_weights", "sincos_2d"]
