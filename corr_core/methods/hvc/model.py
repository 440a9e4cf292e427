"""HVC: hybrid static-dynamic visual correspondence learnt from still images.

Pei et al., "Dynamic in Static: Hybrid Visual Correspondence for Self-Supervised Video Object
Segmentation" (2024). Two crop-resized views of one image, with known coordinates (the batches of
:class:`~corr_core.train.data.PairCropBatches`), go through an online network (backbone ->
projector -> predictor) and a target network (backbone -> projector) whose weights are an
exponential moving average of the online ones (``tau`` from ``tau_base`` to 1, cosine). The
pseudo-dynamic signal generator turns the pair of maps into forward and backward "motion"
signals, and the hybrid loss asks for consistency of both the features (static) and the signals
(dynamic) at positions the coordinates say are the same (:mod:`~corr_core.methods.hvc.loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from corr_core.methods.hvc.heads import PseudoDynamicGenerator, ResidualHead
from corr_core.methods.hvc.loss import HybridCorrespondenceLoss
from corr_core.metrics.features import effective_rank
from corr_core.models import build_backbone
from corr_core.train.ema import OnlineTarget, cosine_momentum


class HVCMethod(OnlineTarget):
    """The HVC objective wrapped as a trainable method for :class:`corr_core.train.Trainer`.

    Args:
        arch: registered backbone name (HVC: ResNet-18 with res3/res4 at stride 1, ``resnet18_fc``).
        hidden_dim: hidden width of the projector, predictor and generator (HVC: 256).
        out_dim: projection width (HVC: 256).
        radius: positive radius in cell diagonals (HVC's code: 0.1).
        tau_base: initial EMA coefficient (HVC: 0.99), raised to 1 on a cosine schedule.
        dynamic: add the pseudo-dynamic term (False: static only, the ablation; no generator is built).
        symmetric: also apply the loss with the views swapped (HVC does; the two directions add up).
    """

    name = "hvc"

    def __init__(
        self,
        arch: str = "resnet18_s8",
        hidden_dim: int = 256,
        out_dim: int = 256,
        radius: float = 0.5,
        tau_base: float = 0.99,
        dynamic: bool = True,
        symmetric: bool = True,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.backbone = build_backbone(arch)
        c = self.backbone.out_channels
        self.projector = ResidualHead(c, hidden_dim, out_dim)
        self.predictor = ResidualHead(out_dim, hidden_dim, out_dim)
        self.generator = PseudoDynamicGenerator(out_dim, hidden_dim) if dynamic else None
        self.make_target()
        self.loss_fn = HybridCorrespondenceLoss(radius, dynamic)
        self.tau_base = float(tau_base)
        self.tau = self.tau_base
        self.symmetric = bool(symmetric)

    def online_modules(self) -> list[nn.Module]:
        return super().online_modules() + ([self.generator] if self.generator is not None else [])

    @torch.no_grad()
    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return self.target_projector(self.target_backbone(x))

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """One loss evaluation.

        Args:
            batch: ``view1``/``view2`` ``(B, 3, S, S)`` float in [0, 1]; ``box1``/``box2`` ``(B, 4)``
                crop boxes ``(y0, x0, h, w)`` in original pixels.

        Returns:
            ``(loss, logs)``; with ``symmetric`` the loss is the sum of the two directions.
        """
        x1, x2, b1, b2 = batch["view1"], batch["view2"], batch["box1"], batch["box2"]
        if self.symmetric:
            x_online, x_target = torch.cat([x1, x2]), torch.cat([x2, x1])
            boxes_p, boxes_z = torch.cat([b1, b2]), torch.cat([b2, b1])
        else:
            x_online, x_target, boxes_p, boxes_z = x1, x2, b1, b2
        feats = self.backbone(x_online)
        p = F.normalize(self.predictor(self.projector(feats)), dim=1)
        z = F.normalize(self._target(x_target), dim=1)
        fwd = bwd = None
        if self.generator is not None:
            fwd, bwd = self.generator(p, z), self.generator(z, p)
        loss, logs = self.loss_fn(p, z, boxes_p, boxes_z, fwd, bwd)
        if self.symmetric:  # mean over both directions' images, times two: their sum
            loss = 2.0 * loss
        self._last_features = feats.detach()
        return loss, {"loss": float(loss.detach()), **logs, "tau": self.tau}

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Same as :meth:`training_step` (what DistributedDataParallel calls)."""
        return self.training_step(batch)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """EMA update of the target network with the cosine-scheduled ``tau``."""
        self.tau = cosine_momentum(self.tau_base, step, total_steps)
        self.update_target(self.tau)

    def log_values(self) -> dict[str, float]:
        """``feat_erank``: effective rank of the last step's backbone features (collapse warning)."""
        feats = getattr(self, "_last_features", None)
        return {} if feats is None else {"feat_erank": effective_rank(feats)}
