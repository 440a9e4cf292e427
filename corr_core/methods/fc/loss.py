"""The FC local correspondence loss (SFC, Hu et al. ECCV 2022, section 3.3, equations 4-6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from corr_core.data.transforms import cell_centers


class LocalCorrespondenceLoss(nn.Module):
    """``L_local = - sum(S * M) / sum(M)`` over the batch.

    ``S_ij`` (eq. 5) is the cosine similarity between prediction vector ``P1^i`` of view 1 and
    projection vector ``Z2^j`` of view 2. ``M_ij`` (eq. 4) is 1 where the two vectors' positions,
    mapped back to the original image (``Phi``), are at most ``radius`` apart. As in PixPro, whose
    convention SFC's ``r = 0.5`` follows, distances are measured in units of the larger of the two
    views' feature-cell diagonals (in original-image pixels), so ``radius`` does not depend on the
    image or crop size.

    Args:
        radius: positive radius ``r`` (SFC uses 0.5).
    """

    def __init__(self, radius: float = 0.5) -> None:
        super().__init__()
        if radius <= 0:
            raise ValueError(f"positive radius must be > 0, got {radius}")
        self.radius = float(radius)

    def positive_mask(self, boxes1: torch.Tensor, boxes2: torch.Tensor, fh: int, fw: int) -> torch.Tensor:
        """Equation 4: ``(B, fh*fw, fh*fw)`` float mask of positive pairs between the two views."""
        c1, d1 = cell_centers(boxes1, fh, fw)
        c2, d2 = cell_centers(boxes2, fh, fw)
        dist = torch.cdist(c1, c2)  # (B, N, N), original pixels
        unit = torch.maximum(d1, d2)[:, None, None]
        return (dist / unit <= self.radius).float()

    def forward(
        self, p1: torch.Tensor, z2: torch.Tensor, boxes1: torch.Tensor, boxes2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Computes the loss.

        Args:
            p1: ``(B, D, h, w)`` online predictions of view 1.
            z2: ``(B, D, h, w)`` target projections of view 2 (no gradient needed).
            boxes1, boxes2: ``(B, 4)`` crop boxes ``(y0, x0, h, w)`` of the views in the original.

        Returns:
            ``(loss, num_positives)``; the loss is 0 (with a graph) when no pair is positive.
        """
        b, _, h, w = p1.shape
        m = self.positive_mask(boxes1, boxes2, h, w)
        p = F.normalize(p1.flatten(2), dim=1)  # (B, D, N)
        z = F.normalize(z2.flatten(2), dim=1)
        s = torch.bmm(p.transpose(1, 2), z)  # (B, N, N), eq. 5
        npos = m.sum()
        loss = -(s * m).sum() / npos.clamp(min=1.0)  # eq. 6
        return loss, npos
