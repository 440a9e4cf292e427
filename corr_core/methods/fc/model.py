"""FC: fine-grained correspondence learning (SFC section 3.3, appendix 0.A.1).

A dense BYOL: an online network (backbone -> dense projector -> dense predictor) and a target
network (backbone -> projector) whose weights are an exponential moving average of the online
ones, with ``tau`` rising from ``tau_base`` to 1 on a cosine schedule. Only random crops are used
as augmentation (colour augmentation hurts fine-grained correspondence, SFC table 3).
"""

from __future__ import annotations

import torch
from torch import nn

from corr_core.methods.fc.loss import LocalCorrespondenceLoss
from corr_core.metrics.features import effective_rank
from corr_core.models import build_backbone
from corr_core.train.ema import OnlineTarget, cosine_momentum


class DenseHead(nn.Sequential):
    """1x1 conv -> BN -> ReLU -> 1x1 conv: the dense projector/predictor of appendix 0.A.1."""

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 256) -> None:
        super().__init__(
            nn.Conv2d(in_dim, hidden_dim, 1, bias=False),
            nn.BatchNorm2d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, out_dim, 1),
        )


class FCMethod(OnlineTarget):
    """The FC objective wrapped as a trainable method for :class:`corr_core.train.Trainer`.

    Args:
        arch: registered backbone name.
        hidden_dim, out_dim: head widths (paper: 2048, 256).
        radius: positive radius ``r`` of equation 4 (paper: 0.5).
        tau_base: initial EMA coefficient (paper: 0.99), raised to 1 on a cosine schedule.
        symmetric: also apply the loss with the views swapped (BYOL's symmetrised loss).
    """

    name = "fc"

    def __init__(
        self,
        arch: str = "resnet18_s8",
        hidden_dim: int = 2048,
        out_dim: int = 256,
        radius: float = 0.5,
        tau_base: float = 0.99,
        symmetric: bool = True,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.backbone = build_backbone(arch)
        c = self.backbone.out_channels
        self.projector = DenseHead(c, hidden_dim, out_dim)
        self.predictor = DenseHead(out_dim, hidden_dim, out_dim)
        self.make_target()
        self.loss_fn = LocalCorrespondenceLoss(radius)
        self.tau_base = float(tau_base)
        self.symmetric = bool(symmetric)
        self.tau = self.tau_base

    def _online(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.projector(self.backbone(x)))

    @torch.no_grad()
    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return self.target_projector(self.target_backbone(x))

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """One loss evaluation.

        Args:
            batch: ``view1``/``view2`` ``(B, 3, S, S)`` float in [0, 1]; ``box1``/``box2`` ``(B, 4)``.

        Returns:
            ``(loss, logs)``.
        """
        x1, x2, b1, b2 = batch["view1"], batch["view2"], batch["box1"], batch["box2"]
        if self.symmetric:
            x_online, x_target = torch.cat([x1, x2]), torch.cat([x2, x1])
            boxes_p, boxes_z = torch.cat([b1, b2]), torch.cat([b2, b1])
        else:
            x_online, x_target, boxes_p, boxes_z = x1, x2, b1, b2
        feats = self.backbone(x_online)
        p = self.predictor(self.projector(feats))
        z = self._target(x_target)
        loss, npos = self.loss_fn(p, z, boxes_p, boxes_z)
        self._last_features = feats.detach()  # measured by log_values(), only on logged steps
        return loss, {"loss": float(loss.detach()), "positives": float(npos) / p.shape[0], "tau": self.tau}

    def log_values(self) -> dict[str, float]:
        """Costlier logs, computed only on the steps the trainer logs: ``feat_erank``, the effective
        rank of the last step's propagation features (a falling value warns of collapse)."""
        feats = getattr(self, "_last_features", None)
        return {} if feats is None else {"feat_erank": effective_rank(feats)}

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Same as :meth:`training_step` (what DistributedDataParallel calls)."""
        return self.training_step(batch)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """EMA update of the target network with the cosine-scheduled ``tau`` (BYOL)."""
        self.tau = cosine_momentum(self.tau_base, step, total_steps)
        self.update_target(self.tau)
