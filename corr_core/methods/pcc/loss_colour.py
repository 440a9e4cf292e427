"""The colourisation loss of PCC pretraining (seed 000, "grayscale coloration", eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ColourMSELoss(nn.Module):
    """``L_MSE = 1/(3HW) sum_c sum_i sum_j (y_cij - I2_cij)^2``: mean squared error in RGB between
    the predicted colours ``y = D(E(I1), E(gray(I2)))`` and the target view ``I2`` (both in [0, 1]).

    The prediction may be smaller than the target (PCC's heads run at a quarter of the image size);
    the target is then area-averaged to the prediction's size.

    ``contrast_weight`` (0: the paper's loss) weighs each pixel by ``1 + w * c / mean(c)``, where
    ``c`` is how far the target's colour is from the average colour around it (a 9-pixel box at the
    prediction's size). Walls, floor and table fill most pixels and dominate the plain MSE; the small
    objects whose colours the heatmaps must follow are the pixels that stand out from their
    surroundings. No labels are involved.

    Args:
        contrast_weight: ``w`` above (>= 0).
    """

    def __init__(self, contrast_weight: float = 0.0) -> None:
        super().__init__()
        if contrast_weight < 0:
            raise ValueError(f"contrast_weight must be >= 0, got {contrast_weight}")
        self.contrast_weight = float(contrast_weight)

    def weights(self, target: torch.Tensor) -> torch.Tensor:
        """``(B, 1, h, w)`` per-pixel weights of a target ``(B, 3, h, w)`` (see the class docstring)."""
        around = F.avg_pool2d(target, 9, stride=1, padding=4, count_include_pad=False)
        c = (target - around).norm(dim=1, keepdim=True)
        return 1.0 + self.contrast_weight * c / c.mean(dim=(2, 3), keepdim=True).clamp_min(1e-6)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``pred`` ``(B, 3, h, w)``, ``target`` ``(B, 3, H, W)`` -> scalar loss."""
        if target.shape[-2:] != pred.shape[-2:]:
            target = F.adaptive_avg_pool2d(target, pred.shape[-2:])
        if self.contrast_weight == 0:
            return F.mse_loss(pred, target)
        w = self.weights(target)
        return ((pred - target) ** 2 * w).sum() / (3.0 * w.sum())
