"""CorrFlow's reconstruction loss: copying colours is classification over colour clusters.

Lai & Xie, "Self-supervised Learning for Video Correspondence Flow", BMVC 2019, the frame
reconstruction equation: the target frame's colours are reconstructed as
``Ĉ_t(i) = Σ_j A_tr(i, j) C_r(j)`` (``A`` the restricted attention of the pointer, ``C_r`` the
reference frame's colour classes, one-hot), and, reconstruction being posed as classification
over ``K = 16`` k-means classes of Lab colour, trained with the cross-entropy against the
target's own classes, ``L = -1/N Σ_i log Ĉ_t(i)[c_t(i)]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ColourReconstructionLoss(nn.Module):
    """Cross-entropy of copied colour distributions against the target's colour classes.

    Args:
        eps: added to the probabilities before the log (the copied distribution may hold zeros).
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Computes the loss.

        Args:
            probs: ``(B, K, h, w)`` float colour distributions on the feature grid (each sums to 1).
            target: ``(B, H, W)`` int64 colour classes in ``[0, K)`` at pixel resolution; ``probs``
                is upsampled (bilinear) to it, as CorrFlow does.

        Returns:
            The mean cross-entropy over pixels, a scalar.
        """
        up = F.interpolate(probs, size=target.shape[-2:], mode="bilinear", align_corners=False)
        return F.nll_loss(torch.log(up.clamp(min=0.0) + self.eps), target)
