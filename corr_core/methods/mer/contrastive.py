"""MER's positive-negative reconstruction loss (seed 002, Sec. 3.4.1, eqs. 16-17)."""

from __future__ import annotations

import torch
from torch import nn


class PositiveNegativeLoss(nn.Module):
    """``-log( sum_pos exp(a) / (sum_pos exp(a) + sum_neg exp(a)) )`` per target pixel, averaged.

    The reference cells of the target's own video (within each query's sampling range) are the
    positives; cells of frames of *other* videos, from the online memory bank, are the negatives
    (eq. 16 gives their affinities). The loss is low when a query's attention falls on its own
    video and high when it is drawn to a similar-looking pixel of another video, which the
    reconstruction would then copy (eq. 17, our reading: an InfoNCE over attention mass).
    """

    def forward(self, pos_logits: torch.Tensor, pos_keep: torch.Tensor, neg_logits: torch.Tensor | None,
                neg_keep: torch.Tensor | None) -> torch.Tensor:
        """Computes the loss.

        Args:
            pos_logits: ``(B, N, P)`` affinities (over the temperature) of each query to the
                positive cells.
            pos_keep: ``(B, N, P)`` boolean, the positives each query may use (at least one each).
            neg_logits: ``(B, N, Q)`` affinities to the negative cells, or None (empty bank).
            neg_keep: ``(B, Q)`` boolean, the negatives from other videos than each item's.

        Returns:
            The scalar loss (0 with a graph when there are no negatives).
        """
        neg_inf = torch.finfo(pos_logits.dtype).min
        pos = pos_logits.masked_fill(~pos_keep, neg_inf).logsumexp(-1)  # (B, N)
        if neg_logits is None or neg_keep is None or not bool(neg_keep.any()):
            return pos_logits.sum() * 0.0
        neg = neg_logits.masked_fill(~neg_keep[:, None, :], neg_inf).logsumexp(-1)
        return (torch.logaddexp(pos, neg) - pos).mean()
