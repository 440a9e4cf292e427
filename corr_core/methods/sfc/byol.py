"""The negative-cosine loss of BYOL, SFC's alternative semantic branch (seed 004, Sec. 3.1, eq. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NegativeCosineLoss(nn.Module):
    """``L_global = - <p1, z2> / (|p1| |z2|)``, batch mean: the online prediction ``p1`` of one view
    against the target projection ``z2`` of the other."""

    def forward(self, p1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """``p1``, ``z2``: ``(B, D)``; returns the scalar loss (in [-1, 1])."""
        return -F.cosine_similarity(p1, z2.detach(), dim=-1).mean()
