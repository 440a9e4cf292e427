"""MER's Multi-Cluster Sampler (seed 002, Sec. 3.3, eqs. 13-15): a sampling range per target pixel.

Our reading of the section (its equations are not in the text we have):

1. **Clusters (eqs. 13-14)**: k-means (``K`` clusters, 5 in the paper) on the target frame's unit
   feature vectors. Each cluster's spatial radius is the mean distance (feature cells) of its
   members to their spatial centre; the mean over the clusters, ``r0``, is the initial sampling
   range.
2. **Region growing**: from each cluster's seed cell (the member closest to its centroid) a region
   grows over 4-connected neighbours whose cosine similarity to the centroid is above the
   threshold ``theta`` (0.45 in the paper's Sec. 4.5), until it stops changing.
3. **Ranges (eq. 15)**: a cell inside a grown region (a coherent, "high similarity" region) gets
   the region's own radius (mean distance of its cells to the seed), clamped to
   ``[min_radius, r0]``: a contracted range for detail; a cell outside every region ("background")
   gets ``expand * r0``: a widened range. A query may only sample reference cells within its range.

With ``enabled=False`` (the ablation "without the Multi-Cluster Sampler") every query gets the
same fixed ``radius``, the restricted window of MAST/CorrFlow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from corr_core.errors import ConfigError


class MultiClusterSampler(nn.Module):
    """Per-query sampling ranges from clusters and region growing (no learnable weights).

    Args:
        enabled: use the clusters (False: the fixed ``radius`` for every query).
        clusters: ``K`` of k-means.
        threshold: ``theta``, the cosine similarity to the centroid a grown cell needs.
        kmeans_iters: Lloyd iterations (initialised deterministically at evenly spaced cells).
        expand: factor on ``r0`` for cells outside every region.
        min_radius: smallest range, in feature cells.
        radius: the fixed range with ``enabled=False``.
    """

    def __init__(self, enabled: bool = True, clusters: int = 5, threshold: float = 0.45, kmeans_iters: int = 5,
                 expand: float = 2.0, min_radius: float = 1.0, radius: float = 6.0) -> None:
        super().__init__()
        if clusters < 1 or kmeans_iters < 1 or not -1 <= threshold <= 1 or expand < 1 or min_radius < 0 or radius < 0:
            raise ConfigError(
                f"multi-cluster sampler: clusters >= 1, kmeans_iters >= 1, threshold in [-1, 1], expand >= 1, "
                f"min_radius >= 0 and radius >= 0 needed; got {clusters}, {kmeans_iters}, {threshold}, {expand}, "
                f"{min_radius}, {radius}")
        self.enabled, self.clusters, self.threshold = bool(enabled), int(clusters), float(threshold)
        self.kmeans_iters, self.expand = int(kmeans_iters), float(expand)
        self.min_radius, self.radius = float(min_radius), float(radius)

    def kmeans(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, N, C)`` unit vectors -> ``(centroids (B, K, C) unit, assignment (B, N) int64)``."""
        b, n, _ = feats.shape
        k = min(self.clusters, n)
        init = torch.linspace(0, n - 1, k, device=feats.device).round().long()
        cent = feats[:, init]
        for _ in range(self.kmeans_iters):
            assign = torch.einsum("bnc,bkc->bnk", feats, cent).argmax(-1)
            onehot = F.one_hot(assign, k).to(feats.dtype)  # (B, N, K)
            sums = torch.einsum("bnk,bnc->bkc", onehot, feats)
            counts = onehot.sum(1)[..., None]
            cent = torch.where(counts > 0, F.normalize(sums, dim=-1), cent)  # empty clusters stay
        assign = torch.einsum("bnc,bkc->bnk", feats, cent).argmax(-1)
        return cent, assign

    @torch.no_grad()
    def radii(self, target: torch.Tensor) -> torch.Tensor:
        """The sampling range of every target cell: ``(B, h*w)`` float, in feature cells.

        Args:
            target: ``(B, C, h, w)`` unit feature vectors of the target frame.
        """
        b, c, h, w = target.shape
        n = h * w
        if not self.enabled:
            return torch.full((b, n), self.radius, device=target.device)
        feats = target.flatten(2).transpose(1, 2)  # (B, N, C)
        cent, assign = self.kmeans(feats)
        k = cent.shape[1]
        ys, xs = torch.meshgrid(torch.arange(h, device=target.device), torch.arange(w, device=target.device),
                                indexing="ij")
        pos = torch.stack([ys.reshape(-1), xs.reshape(-1)], -1).float()  # (N, 2)
        member = F.one_hot(assign, k).to(feats.dtype).transpose(1, 2)  # (B, K, N)
        count = member.sum(-1)
        centre = member @ pos / count.clamp(min=1)[..., None]  # (B, K, 2)
        spread = (member * torch.cdist(centre, pos[None].expand(b, -1, -1))).sum(-1) / count.clamp(min=1)
        used = count > 0
        r0 = (spread * used).sum(-1) / used.sum(-1).clamp(min=1)  # (B,)
        r0 = r0.clamp(min=max(self.min_radius, 1.0))
        sim = torch.einsum("bnc,bkc->bkn", feats, cent)  # (B, K, N)
        seed = torch.where(member > 0, sim, torch.full_like(sim, -2.0)).argmax(-1)  # (B, K)
        region = F.one_hot(seed, n).to(feats.dtype) * used[..., None]
        allowed = (sim > self.threshold).to(feats.dtype)
        region = self._grow(region.view(b, k, h, w), allowed.view(b, k, h, w)).view(b, k, n)
        dist_seed = torch.cdist(pos[seed.view(-1)].view(b, k, 1, 2), pos[None, None].expand(b, k, -1, -1)).squeeze(2)
        size = region.sum(-1)
        rho = (region * dist_seed).sum(-1) / size.clamp(min=1)  # (B, K) region radius
        rho = torch.minimum(rho.clamp(min=self.min_radius), r0[:, None])
        inside = region > 0
        score = torch.where(inside, sim, torch.full_like(sim, -2.0))  # the most similar region holding the cell
        best = score.argmax(1)  # (B, N)
        in_any = inside.any(1)
        contracted = rho.gather(1, best)
        return torch.where(in_any, contracted, (self.expand * r0)[:, None].expand(b, n))

    @staticmethod
    def _grow(region: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """4-connected region growing of ``(B, K, h, w)`` seeds within ``allowed`` (both 0/1)."""
        kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]], device=region.device)
        b, k, h, w = region.shape
        kernel = kernel.to(region.dtype).view(1, 1, 3, 3)
        allowed = torch.maximum(allowed, region)  # a seed always belongs to its region
        for _ in range(h * w):
            grown = (F.conv2d(region.view(b * k, 1, h, w), kernel, padding=1).view(b, k, h, w) > 0).to(region.dtype)
            grown = grown * allowed
            if torch.equal(grown, region):
                break
            region = grown
        return region

    @staticmethod
    def window(radii: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``(B, N, N)`` boolean: reference cell ``j`` lies within query ``i``'s range (distance in
        cells ``<= radii[b, i]``; a query always sees its own position)."""
        ys, xs = torch.meshgrid(torch.arange(h, device=radii.device), torch.arange(w, device=radii.device),
                                indexing="ij")
        pos = torch.stack([ys.reshape(-1), xs.reshape(-1)], -1).float()
        dist = torch.cdist(pos, pos)  # (N, N)
        return dist[None] <= radii[..., None]
