"""MER's weight-map loss (seed 002, Sec. 3.4.2, eqs. 18-20)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WeightMapLoss(nn.Module):
    """Smooth-L1 reconstruction loss with a weight per pixel (eq. 20).

    The weights come from the Value Extraction Network's value map ``V`` (in [0, 1]; high on the
    regions the tracked objects are likely in): ``W = V + gamma * (1 - V)``, normalised to mean 1
    per frame. ``gamma`` starts at 0 (the loss looks at the high-value, foreground regions: faster
    convergence) and rises to 1 over training (the background counts as much: no overfitting),
    where the loss is the plain smooth-L1 of eqs. 18-19. As MAST, the colours are scaled by
    ``scale`` (20) before a smooth-L1 of threshold 1.

    Args:
        scale: factor on the colours (MAST's 20).
    """

    def __init__(self, scale: float = 20.0) -> None:
        super().__init__()
        self.scale = float(scale)

    @staticmethod
    def weights(value: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
        """``(B, N)`` weights of mean 1 from ``(B, N)`` values and ``gamma`` in [0, 1]."""
        w = value + gamma * (1.0 - value) + 1e-3
        return w / w.mean(dim=1, keepdim=True)

    def forward(self, recon: torch.Tensor, target: torch.Tensor, value: torch.Tensor | None,
                gamma: float | torch.Tensor = 1.0) -> torch.Tensor:
        """Computes the loss.

        Args:
            recon: ``(B, 3, N)`` reconstructed colours of the target cells.
            target: ``(B, 3, N)`` their true colours.
            value: ``(B, N)`` value map, or None for uniform weights.
            gamma: the foreground-to-background schedule value.
        """
        err = F.smooth_l1_loss(recon * self.scale, target * self.scale, reduction="none").mean(1)  # (B, N)
        if value is None:
            return err.mean()
        return (err * self.weights(value, gamma)).mean()
