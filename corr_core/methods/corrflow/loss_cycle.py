"""CorrFlow's forward-backward cycle consistency, a regulariser against drift.

Lai & Xie, BMVC 2019, the cycle-consistency regulariser: the colours of the first frame of a clip
are carried forward through the recursive reconstruction, ``C_0 -> Ĉ_1 -> ... -> Ĉ_t`` (each step
copying from the previous *prediction*, as at test time), then backward, ``Ĉ_t -> ... -> Ĉ_0``,
and the result must give back the first frame's own colours: the reconstruction cross-entropy
(:mod:`~corr_core.methods.corrflow.loss_reconstruction`) against ``c_0``, summed over ``t = 1 .. T-1``. CorrFlow weighs it 0.1 against the reconstruction loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from corr_core.methods.corrflow.loss_reconstruction import ColourReconstructionLoss

Pointer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class CycleConsistencyLoss(nn.Module):
    """Forward to every frame of the clip and back to the first, scored against the first frame.

    Args:
        reconstruction: the cross-entropy applied to the colours brought back.
    """

    def __init__(self, reconstruction: ColourReconstructionLoss | None = None) -> None:
        super().__init__()
        self.reconstruction = reconstruction or ColourReconstructionLoss()

    def forward(self, pointer: Pointer, feats: list[torch.Tensor], colours0: torch.Tensor,
                target0: torch.Tensor) -> torch.Tensor:
        """Computes the loss.

        Args:
            pointer: ``pointer(query, reference, values)`` copies ``values`` ``(B, K, h, w)`` of the
                reference frame onto the query frame (features ``(B, C, h, w)`` each).
            feats: the ``T >= 2`` frames' features, in time order.
            colours0: ``(B, K, h, w)`` the first frame's colour distributions on the feature grid.
            target0: ``(B, H, W)`` int64, the first frame's colour classes.

        Returns:
            The sum over ``t = 1 .. T-1`` of the cross-entropy after the cycle ``0 -> t -> 0``.
        """
        chain = [colours0]
        for t in range(1, len(feats)):
            chain.append(pointer(feats[t], feats[t - 1], chain[-1]))
        total = colours0.new_zeros(())
        for t in range(1, len(feats)):
            back = chain[t]
            for s in range(t, 0, -1):
                back = pointer(feats[s - 1], feats[s], back)
            total = total + self.reconstruction(back, target0)
        return total
