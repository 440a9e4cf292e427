"""SFC's semantic branch: an image-level self-supervised ResNet (seed 004, Sec. 3.1-3.2).

SFC takes an off-the-shelf MoCo (or BYOL, SimCLR...) network and keeps only its backbone, whose
mid-level feature maps carry semantic correspondence. :class:`SemanticMethod` trains one here:

* ``objective="moco"``: MoCo v2 (He et al. 2020, Chen et al. 2020): a query encoder (backbone,
  global average pool, 2-layer MLP projector), a key encoder that is its exponential moving
  average (eq. 2), a queue of earlier keys as negatives and the InfoNCE loss (eq. 1). With one
  process MoCo's shuffled batch norm across GPUs is replaced by encoding the keys of a shuffled
  batch in ``key_groups`` separate groups (so a query and its key never share the batch
  statistics they are normalised with).
* ``objective="byol"``: BYOL (Grill et al. 2020): an online predictor on the projector, an EMA
  target, the negative cosine loss (eq. 3), symmetrised.

Views are strongly augmented (random resized crops, colour jitter, grey, blur, flips; MoCo v2's
recipe, :mod:`corr_core.methods.sfc.augment`), unlike FC's crops-only views: the two objectives
ask for conflicting augmentations and receptive fields, which is why SFC trains two networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from corr_core.errors import ConfigError
from corr_core.methods.sfc.byol import NegativeCosineLoss
from corr_core.methods.sfc.infonce import InfoNCELoss
from corr_core.metrics.features import effective_rank
from corr_core.models import build_backbone
from corr_core.train.ema import OnlineTarget, cosine_momentum

OBJECTIVES = ("moco", "byol")


class MLPHead(nn.Sequential):
    """Linear -> BN -> ReLU -> Linear on pooled vectors (MoCo v2's and BYOL's projector/predictor)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, out_dim))


class SemanticMethod(OnlineTarget):
    """Image-level self-supervised training of a ResNet backbone (MoCo v2 or BYOL).

    Args:
        arch: registered backbone (e.g. ``resnet18_s8``; the paper's MoCo is a ResNet-50).
        objective: ``"moco"`` or ``"byol"``.
        hidden_dim, out_dim: projector (and BYOL predictor) widths (MoCo v2: 2048, 128).
        queue_size: MoCo's negatives (65536 in MoCo); a multiple of the batch size is not needed.
        temperature: MoCo's ``tau`` (0.2 in MoCo v2).
        momentum: EMA coefficient of the key/target encoder (MoCo: 0.999; BYOL: its start, raised
            to 1 on a cosine schedule).
        key_groups: groups the keys are encoded in (MoCo with one process, see module docstring).
    """

    name = "sfc_semantic"

    def __init__(self, arch: str = "resnet18_s8", objective: str = "moco", hidden_dim: int = 2048,
                 out_dim: int = 128, queue_size: int = 4096, temperature: float = 0.2, momentum: float = 0.99,
                 key_groups: int = 2) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ConfigError(f"semantic objective must be one of {list(OBJECTIVES)}, got {objective!r}")
        if queue_size < 1 or key_groups < 1 or not 0 <= momentum <= 1:
            raise ConfigError(f"semantic branch: queue_size >= 1, key_groups >= 1, momentum in [0, 1] needed; got "
                              f"{queue_size}, {key_groups}, {momentum}")
        self.arch, self.objective = arch, objective
        self.backbone = build_backbone(arch)
        c = self.backbone.out_channels
        self.projector = MLPHead(c, hidden_dim, out_dim)
        self.predictor = MLPHead(out_dim, hidden_dim, out_dim) if objective == "byol" else None
        self.make_target()
        self.momentum_base = self.momentum = float(momentum)
        self.key_groups = int(key_groups)
        if objective == "moco":
            self.loss_fn: nn.Module = InfoNCELoss(temperature)
            self.register_buffer("queue", F.normalize(torch.randn(queue_size, out_dim), dim=1))
            self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        else:
            self.loss_fn = NegativeCosineLoss()

    def _embed(self, backbone: nn.Module, projector: nn.Module, x: torch.Tensor) -> torch.Tensor:
        feats = backbone(x)
        self._last_features = feats.detach()
        return projector(feats.mean(dim=(2, 3)))

    @torch.no_grad()
    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        """Target/key projections, encoded in shuffled groups (MoCo's shuffle BN on one process)."""
        if self.objective == "byol" or self.key_groups <= 1 or x.shape[0] < 2 * self.key_groups:
            return self.target_projector(self.target_backbone(x).mean(dim=(2, 3)))
        perm = torch.randperm(x.shape[0], device=x.device)
        parts = [self.target_projector(self.target_backbone(chunk).mean(dim=(2, 3)))
                 for chunk in x[perm].chunk(self.key_groups)]
        out = torch.empty(x.shape[0], parts[0].shape[1], device=x.device, dtype=parts[0].dtype)
        out[perm] = torch.cat(parts)
        return out

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """One loss evaluation.

        Args:
            batch: ``sem1``/``sem2`` ``(B, 3, S, S)`` two augmented views of each image, RGB in [0, 1].

        Returns:
            ``(loss, logs)``.
        """
        x1, x2 = batch["sem1"], batch["sem2"]
        if self.objective == "moco":
            q = F.normalize(self._embed(self.backbone, self.projector, x1), dim=1)
            k = F.normalize(self._keys(x2), dim=1)
            loss, acc = self.loss_fn(q, k, self.queue.clone())
            if self.training:
                self._enqueue(k)
            return loss, {"loss": float(loss.detach()), "acc": float(acc)}
        p = self.predictor(self._embed(self.backbone, self.projector, torch.cat([x1, x2])))
        z = self._keys(torch.cat([x2, x1]))
        loss = self.loss_fn(p, z)
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        n, size = keys.shape[0], self.queue.shape[0]
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = keys[-size:] if n > size else keys
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    def log_values(self) -> dict[str, float]:
        """``sem_erank``: effective rank of the last dense features of the semantic backbone."""
        feats = getattr(self, "_last_features", None)
        return {} if feats is None else {"sem_erank": effective_rank(feats)}

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Same as :meth:`training_step` (what DistributedDataParallel calls)."""
        return self.training_step(batch)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """EMA update of the key/target encoder (eq. 2); BYOL raises its coefficient to 1 (cosine)."""
        if self.objective == "byol":
            self.momentum = cosine_momentum(self.momentum_base, step, total_steps)
        self.update_target(self.momentum)
