"""Feature-health measures used while training self-supervised methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def effective_rank(features: torch.Tensor) -> float:
    """Effective rank (Roy & Vetterli 2007) of dense features: how many directions they use.

    The exponential of the entropy of the normalised squared singular values of the centred,
    L2-normalised feature vectors. 1 means every vector points the same way (collapse); the
    maximum is the channel count. Dense self-supervised methods trained briefly (BYOL-style ones
    especially) tend to a low effective rank; label propagation then has little to tell apart.

    Args:
        features: ``(B, C, H, W)`` or ``(N, C)`` float tensor.

    Returns:
        The effective rank, in ``[1, C]``.
    """
    if features.dim() == 4:
        features = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"expected (B, C, H, W) or (N, C) features with N >= 2, got {tuple(features.shape)}")
    x = F.normalize(features.float(), dim=1)
    x = x - x.mean(0, keepdim=True)
    s2 = torch.linalg.svdvals(x).pow(2)
    total = s2.sum()
    if total <= 0:
        return 1.0
    p = s2 / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))
