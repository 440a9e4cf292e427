"""The InfoNCE loss of MoCo, SFC's semantic branch (seed 004, Sec. 3.1, eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InfoNCELoss(nn.Module):
    """``-log( exp(z1.z2 / tau) / (exp(z1.z2 / tau) + sum_k exp(z1.s_k / tau)) )``, batch mean.

    ``z1`` (query) and ``z2`` (key of the other view of the same image) are unit vectors, the
    negatives ``s_k`` the keys of earlier batches kept in MoCo's queue.

    Args:
        temperature: ``tau`` (MoCo v2: 0.2).
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"InfoNCE temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Computes the loss.

        Args:
            query: ``(B, D)`` unit query vectors.
            key: ``(B, D)`` unit positive keys (no gradient needed).
            queue: ``(K, D)`` unit negative keys.

        Returns:
            ``(loss, accuracy)``: the accuracy is the share of queries whose positive beats every
            negative (a logged diagnostic).
        """
        pos = (query * key).sum(-1, keepdim=True)  # (B, 1)
        neg = query @ queue.t()  # (B, K)
        logits = torch.cat([pos, neg], dim=1) / self.temperature
        target = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
        return F.cross_entropy(logits, target), (logits.argmax(1) == 0).float().mean()
