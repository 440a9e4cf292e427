"""HVC's heads: the dense projector/predictor and the pseudo-dynamic signal generator.

Pei et al., "Dynamic in Static: Hybrid Visual Correspondence for Self-Supervised Video Object
Segmentation" (2024), sec. 3.1 (figure 3): the online network is encoder -> projector ->
predictor, the target network encoder -> projector; the pseudo-dynamic signal generation module is
a small convolution over the two views' feature maps.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualHead(nn.Module):
    """Dense projector / predictor: 1x1 conv, BN, LeakyReLU; a residual 1x1 conv, BN, LeakyReLU; 1x1 conv.

    Input ``(B, in_dim, h, w)``, output ``(B, out_dim, h, w)`` (float).
    """

    def __init__(self, in_dim: int, hidden_dim: int = 256, out_dim: int = 256) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_dim, hidden_dim, 1)
        self.bn1 = nn.BatchNorm2d(hidden_dim)
        self.conv2 = nn.Conv2d(hidden_dim, hidden_dim, 1)
        self.bn2 = nn.BatchNorm2d(hidden_dim)
        self.conv3 = nn.Conv2d(hidden_dim, out_dim, 1)
        self.act = nn.LeakyReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.bn1(self.conv1(x)))
        h = self.act(self.bn2(self.conv2(h) + h))
        return self.conv3(h)


class PseudoDynamicGenerator(nn.Module):
    """Pseudo-dynamic signals between two views: ``M(a -> b) = g([F_a, F_b])``.

    ``g`` is 1x1 conv -> BN -> ReLU -> 1x1 conv -> BN on the channel concatenation of the two
    views' maps, with a 2-channel output per cell, like an optical-flow vector: the forward signal
    is ``g([F_1, F_2])``, the backward one ``g([F_2, F_1])``.

    Args:
        dim: channels of each input map.
        hidden_dim: hidden width.
        signal_dim: channels of the signal (2).
    """

    def __init__(self, dim: int, hidden_dim: int = 256, signal_dim: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2 * dim, hidden_dim, 1),
            nn.BatchNorm2d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, signal_dim, 1),
            nn.BatchNorm2d(signal_dim),
        )

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``(B, dim, h, w)`` x 2 -> ``(B, signal_dim, h, w)`` the signal from view ``a`` to view ``b``."""
        return self.net(torch.cat([a, b], dim=1))
