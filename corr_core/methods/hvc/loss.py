"""HVC's hybrid static-dynamic correspondence loss.

Pei et al., "Dynamic in Static: Hybrid Visual Correspondence for Self-Supervised Video Object
Segmentation" (2024), sec. 3.2. Two crops of one image, with known boxes, give a positive mask
``M_ij = 1`` where cell ``i`` of view 1 and cell ``j`` of view 2, mapped back to the image, are
closer than ``r`` (in units of the larger cell diagonal, PixPro's convention). Over the positives:

- static consistency: ``S_ij = cos(P1_i, Z2_j)``, the online prediction of view 1 against the
  target projection of view 2;
- dynamic consistency: ``D_ij = cos(M_fwd_i, M_bwd_j)``, the forward pseudo-dynamic signal
  ``g([P1, Z2])`` against the backward one ``g([Z2, P1])`` (:class:`~corr_core.methods.hvc.heads.PseudoDynamicGenerator`);
- ``L = -2 (mean_b Σ S M / Σ M + mean_b Σ D M / Σ M)``, each image normalised by its own number of
  positives (0 for an image without any), as the authors' implementation does.

``dynamic=False`` keeps the static term alone (the paper's static-only ablation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from corr_core.data.transforms import cell_centers


class HybridCorrespondenceLoss(nn.Module):
    """The hybrid loss of one direction (view 1 online, view 2 target).

    Args:
        radius: positive radius ``r`` in cell diagonals (> 0).
        dynamic: include the pseudo-dynamic term.
    """

    def __init__(self, radius: float = 0.5, dynamic: bool = True) -> None:
        super().__init__()
        if radius <= 0:
            raise ValueError(f"positive radius must be > 0, got {radius}")
        self.radius, self.dynamic = float(radius), bool(dynamic)

    def positive_mask(self, boxes1: torch.Tensor, boxes2: torch.Tensor, fh: int, fw: int) -> torch.Tensor:
        """``(B, fh*fw, fh*fw)`` float: 1 where the two cells' centres are closer than ``radius`` diagonals."""
        c1, d1 = cell_centers(boxes1, fh, fw)
        c2, d2 = cell_centers(boxes2, fh, fw)
        unit = torch.maximum(d1, d2)[:, None, None]
        return (torch.cdist(c1, c2) / unit < self.radius).float()

    @staticmethod
    def _masked_mean_cosine(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per image ``Σ cos(a_i, b_j) M_ij / Σ M_ij``, averaged over the batch."""
        a = F.normalize(a.flatten(2), dim=1)
        b = F.normalize(b.flatten(2), dim=1)
        sim = torch.bmm(a.transpose(1, 2), b)
        return ((sim * mask).sum((1, 2)) / (mask.sum((1, 2)) + 1e-6)).mean()

    def forward(
        self,
        p1: torch.Tensor,
        z2: torch.Tensor,
        boxes1: torch.Tensor,
        boxes2: torch.Tensor,
        fwd: torch.Tensor | None = None,
        bwd: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Computes the loss.

        Args:
            p1: ``(B, D, h, w)`` online predictions of view 1.
            z2: ``(B, D, h, w)`` target projections of view 2.
            boxes1, boxes2: ``(B, 4)`` crop boxes ``(y0, x0, h, w)`` in original pixels.
            fwd, bwd: ``(B, 2, h, w)`` forward / backward pseudo-dynamic signals (needed when
                ``dynamic``).

        Returns:
            ``(loss, logs)``: logs ``static`` and ``dynamic`` (mean positive similarities) and
            ``positives`` (per image).
        """
        b, _, h, w = p1.shape
        mask = self.positive_mask(boxes1, boxes2, h, w)
        static = self._masked_mean_cosine(p1, z2, mask)
        total = static
        logs = {"static": float(static.detach()), "positives": float(mask.sum()) / b}
        if self.dynamic:
            if fwd is None or bwd is None:
                raise ValueError("the dynamic term needs the forward and backward pseudo-dynamic signals")
            dynamic = self._masked_mean_cosine(fwd, bwd, mask)
            total = total + dynamic
            logs["dynamic"] = float(dynamic.detach())
        return -2.0 * total, logs
