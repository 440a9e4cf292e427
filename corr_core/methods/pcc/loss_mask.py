"""The correspondence loss of PCC (seed 000): Dice + binary cross-entropy on the target mask, and
binary cross-entropy on the existence of the object in the target view."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - 2 sum(O * O^) / (sum(O^2) + sum(O^^2))`` per item, ``(B,)`` (``eps`` smooths empty masks)."""
    p, t = prob.flatten(1), target.flatten(1)
    return 1.0 - (2.0 * (p * t).sum(1) + eps) / ((p * p).sum(1) + (t * t).sum(1) + eps)


class CorrespondenceLoss(nn.Module):
    """``L = L_Dice + L_BCE`` over pairs whose object exists in the target (PCC's correspondence
    loss), plus ``existence_weight * BCE(existence)`` over all pairs, including the pairs whose
    object is absent from the target (the existence head's negatives).

    Args:
        existence_weight: weight of the existence term.
    """

    def __init__(self, existence_weight: float = 0.5) -> None:
        super().__init__()
        self.existence_weight = float(existence_weight)

    def forward(self, mask_logits: torch.Tensor, exist_logits: torch.Tensor, target_mask: torch.Tensor,
                exists: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Computes the loss.

        Args:
            mask_logits: ``(B, 1, h, w)`` predicted mask logits.
            exist_logits: ``(B,)`` predicted existence logits.
            target_mask: ``(B, 1, H, W)`` float target masks (area-averaged to ``h x w`` here).
            exists: ``(B,)`` float, 1 where the object is in the target view.

        Returns:
            ``(loss, logs)`` with the Dice, BCE and existence terms.
        """
        if target_mask.shape[-2:] != mask_logits.shape[-2:]:
            target_mask = F.adaptive_avg_pool2d(target_mask, mask_logits.shape[-2:])
        pos = exists > 0.5
        zero = mask_logits.sum() * 0.0
        if pos.any():
            logits, tgt = mask_logits[pos], target_mask[pos]
            dice = dice_loss(torch.sigmoid(logits), tgt).mean()
            bce = F.binary_cross_entropy_with_logits(logits, tgt)
        else:
            dice = bce = zero
        exist = F.binary_cross_entropy_with_logits(exist_logits, exists.to(exist_logits.dtype))
        loss = dice + bce + self.existence_weight * exist
        return loss, {"dice": float(dice.detach()), "bce": float(bce.detach()), "exist_bce": float(exist.detach())}
