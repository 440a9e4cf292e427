"""MER's online memory bank of frames from earlier videos, the negatives of Sec. 3.4.1.

The bank is a ring of ``size`` frames (paper: 3250); of each frame it keeps the unit feature
vectors of ``points`` random cells, their cell coordinates and the frame's video id. It lives in
buffers, so it is saved with a run's ``last.*`` and a resumed run continues with the same bank.
"""

from __future__ import annotations

import torch
from torch import nn

from corr_core.errors import ConfigError


class MemoryBank(nn.Module):
    """A ring buffer of frames' feature vectors (no gradient).

    Args:
        size: frames kept.
        points: cells kept per frame.
        channels: feature channels ``C``.
    """

    def __init__(self, size: int, points: int, channels: int) -> None:
        super().__init__()
        if size < 0 or points < 1:
            raise ConfigError(f"memory bank: size must be >= 0 and points >= 1, got {size}, {points}")
        self.register_buffer("feats", torch.zeros(size, points, channels))
        self.register_buffer("coords", torch.zeros(size, points, 2))
        self.register_buffer("video", torch.full((size,), -1, dtype=torch.int64))  # -1: empty slot
        self.register_buffer("ptr", torch.zeros((), dtype=torch.int64))

    @property
    def size(self) -> int:
        return int(self.video.shape[0])

    @torch.no_grad()
    def push(self, feats: torch.Tensor, coords: torch.Tensor, video: torch.Tensor) -> None:
        """Adds frames (the oldest make room).

        Args:
            feats: ``(B, N, C)`` unit feature vectors of ``B`` frames.
            coords: ``(N, 2)`` their cell coordinates in [0, 1].
            video: ``(B,)`` video ids.
        """
        if self.size == 0:
            return
        b, n, _ = feats.shape
        p = self.feats.shape[1]
        idx = torch.stack([torch.randperm(n, device=feats.device)[:p] for _ in range(b)])  # (B, P)
        if idx.shape[1] < p:  # fewer cells than points: repeat
            idx = idx.repeat(1, -(-p // idx.shape[1]))[:, :p]
        slots = (self.ptr + torch.arange(b, device=feats.device)) % self.size
        self.feats[slots] = torch.gather(feats, 1, idx[..., None].expand(-1, -1, feats.shape[2])).to(self.feats.dtype)
        self.coords[slots] = coords[idx]
        self.video[slots] = video.to(self.video.dtype)
        self.ptr.copy_((self.ptr + b) % self.size)

    @torch.no_grad()
    def sample(self, frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Up to ``frames`` random filled frames: ``(feats (F, P, C), coords (F, P, 2), video (F,))``."""
        filled = torch.nonzero(self.video >= 0).flatten()
        pick = filled[torch.randperm(filled.numel(), device=filled.device)[:frames]]
        return self.feats[pick], self.coords[pick], self.video[pick]
