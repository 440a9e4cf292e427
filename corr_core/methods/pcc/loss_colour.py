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
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``pred`` ``(B, 3, h, w)``, ``target`` ``(B, 3, H, W)`` -> scalar loss."""
        if target.shape[-2:] != pred.shape[-2:]:
            target = F.adaptive_avg_pool2d(target, pred.shape[-2:])
        return F.mse_loss(pred, target)
