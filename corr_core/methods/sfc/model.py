"""SFC: semantic-aware fine-grained correspondence (seed 004, Hu et al., ECCV 2022).

Two networks trained apart and fused late (Sec. 3.4): the fine-grained one is FC
(:class:`~corr_core.methods.fc.FCMethod`, Sec. 3.3), the semantic one an image-level
self-supervised ResNet (Sec. 3.2): trained in the same run by MoCo v2 or BYOL
(:class:`~corr_core.methods.sfc.semantic.SemanticMethod`, on its own strongly augmented views),
or a user's checkpoint loaded and frozen (:func:`~corr_core.methods.sfc.weights.load_semantic_weights`).
The two share no weights and no loss term, so training them in one run is training them apart:
the FC branch of an SFC run is, weight for weight, the FC run of the same recipe (it is built
first, from the same seed, and sees the same batches).

The network used downstream is :class:`~corr_core.models.fusion.FusedFeatures`:
``[L2(F_s), lambda * L2(F_f)]`` re-normalised (eq. 7), registered as one architecture
(:data:`~corr_core.models.registry.SFC_FUSIONS`), so ``model.safetensors`` holds both branches
and ``lambda``, loads by path alone and exports as one ONNX graph. Its propagation settings are
SFC's Table 0.A.2 (:data:`SFC_PROPAGATION`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from corr_core.errors import ConfigError
from corr_core.methods.fc import FCMethod
from corr_core.methods.sfc.semantic import SemanticMethod
from corr_core.methods.sfc.weights import load_semantic_weights
from corr_core.models import build_backbone
from corr_core.models.fusion import FusedFeatures
from corr_core.models.registry import SFC_FUSIONS

log = logging.getLogger(__name__)

#: SFC Table 0.A.2 (fused networks), per benchmark: ``corr eval vos --topk 15 --context 20
#: --radius 15`` on DAVIS (lambda 1.75 is the tracker's default ``fusion_lambda``).
SFC_PROPAGATION: dict[str, dict[str, Any]] = {
    "davis": {"fusion_lambda": 1.75, "topk": 15, "context": 20, "radius": 15.0},
    "jhmdb": {"fusion_lambda": 1.0, "topk": 20, "context": 8, "radius": 5.0},
    "vip": {"fusion_lambda": 1.0, "topk": 10, "context": 8, "radius": 15.0},
}


class SFCMethod(nn.Module):
    """FC plus a semantic branch, saved as one fused feature network.

    Args:
        arch: a fused architecture of :data:`~corr_core.models.registry.SFC_FUSIONS` (it names the
            semantic and the fine-grained backbones).
        lam: ``lambda`` of eq. 7 stored with the network (the tracker uses its ``fusion_lambda``).
        semantic: a semantic checkpoint to load and freeze (corr checkpoint, or a torchvision-layout
            ResNet state dict); None: the semantic branch is trained in this run by ``objective``.
        objective: ``"moco"`` (MoCo v2) or ``"byol"``.
        semantic_weight: weight of the semantic loss in the sum (the branches share nothing, so it
            only scales the semantic branch's gradients).
        fine_grained_init: a corr FC checkpoint to start the fine-grained branch from, or None.
        hidden_dim, out_dim, radius, tau_base, symmetric: FC's settings.
        sem_hidden_dim, sem_out_dim, queue_size, temperature, momentum, key_groups: the semantic
            objective's settings (see :class:`~corr_core.methods.sfc.semantic.SemanticMethod`).
    """

    name = "sfc"

    def __init__(
        self,
        arch: str = "sfc_resnet18_s8",
        lam: float = 1.75,
        semantic: str | None = None,
        objective: str = "moco",
        semantic_weight: float = 1.0,
        fine_grained_init: str | None = None,
        hidden_dim: int = 512,
        out_dim: int = 256,
        radius: float = 0.5,
        tau_base: float = 0.99,
        symmetric: bool = True,
        sem_hidden_dim: int = 2048,
        sem_out_dim: int = 128,
        queue_size: int = 4096,
        temperature: float = 0.2,
        momentum: float = 0.99,
        key_groups: int = 2,
    ) -> None:
        super().__init__()
        if arch not in SFC_FUSIONS:
            raise ConfigError(f"model.arch: {arch!r} is not a fused SFC architecture; known: {sorted(SFC_FUSIONS)}")
        semantic_arch, fine_arch = SFC_FUSIONS[arch]
        self.arch, self.lam, self.semantic_weight = arch, float(lam), float(semantic_weight)
        if not 0 <= self.lam < float("inf"):
            raise ConfigError(f"model.lam: lambda must be a finite number >= 0, got {lam!r}")
        self.fc = FCMethod(fine_arch, hidden_dim, out_dim, radius, tau_base, symmetric)  # first: FC's own init
        with torch.random.fork_rng(devices=[]):  # the semantic branch leaves the random stream as FC alone finds it
            if semantic:
                self.semantic_method = None
                self.semantic_net = build_backbone(semantic_arch)
                what = load_semantic_weights(self.semantic_net, semantic, semantic_arch)
                self.semantic_net.requires_grad_(False)
                self.semantic_net.eval()
                log.info("semantic branch %s: %s (frozen)", semantic_arch, what)
            else:
                self.semantic_method = SemanticMethod(semantic_arch, objective, sem_hidden_dim, sem_out_dim,
                                                      queue_size, temperature, momentum, key_groups)
                self.semantic_net = None
        if fine_grained_init:
            self._init_fine_grained(fine_grained_init, fine_arch)

    def _init_fine_grained(self, path: str, fine_arch: str) -> None:
        from corr_core.errors import CheckpointError
        from corr_core.io.checkpoint import check_feature_checkpoint, load_checkpoint, load_module_state

        tensors, meta = load_checkpoint(path)
        check_feature_checkpoint(meta, path)
        if meta.get("arch") != fine_arch:
            raise CheckpointError(f"model.fine_grained_init {path}: architecture {meta.get('arch')!r}, the "
                                  f"fine-grained branch of {self.arch} is {fine_arch!r}")
        load_module_state(self.fc.backbone, tensors, "backbone.", str(path))
        self.fc.sync_target()

    @property
    def semantic_backbone(self) -> nn.Module:
        """The semantic branch's backbone (trained here or loaded)."""
        return self.semantic_net if self.semantic_method is None else self.semantic_method.backbone

    def train(self, mode: bool = True) -> SFCMethod:
        super().train(mode)
        if self.semantic_net is not None:
            self.semantic_net.eval()  # a loaded semantic network keeps its batch-norm statistics
        return self

    def online_parameters(self):
        yield from self.fc.online_parameters()
        if self.semantic_method is not None:
            yield from self.semantic_method.online_parameters()

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """FC's loss (eq. 6) plus, when the semantic branch trains here, its loss (eq. 1 or 3).

        Args:
            batch: FC's ``view1``/``view2``/``box1``/``box2`` and, when the semantic branch trains,
                ``sem1``/``sem2`` (see :class:`~corr_core.methods.sfc.data.ViewBatches`).
        """
        loss, fc_logs = self.fc.training_step(batch)
        logs = {"fc": fc_logs["loss"], "positives": fc_logs["positives"], "tau": fc_logs["tau"]}
        if self.semantic_method is not None:
            if "sem1" not in batch:
                raise ConfigError("sfc: the semantic branch trains in this run but the batch has no semantic views "
                                  "(sem1/sem2); build batches with corr_core.methods.sfc.data.sfc_batches")
            sem_loss, sem_logs = self.semantic_method.training_step(batch)
            loss = loss + self.semantic_weight * sem_loss
            logs.update({"semantic": sem_logs["loss"], **{f"sem_{k}": v for k, v in sem_logs.items() if k != "loss"}})
        logs["loss"] = float(loss.detach())
        return loss, logs

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Same as :meth:`training_step` (what DistributedDataParallel calls)."""
        return self.training_step(batch)

    def log_values(self) -> dict[str, float]:
        """FC's ``feat_erank`` and the semantic branch's ``sem_erank``."""
        out = self.fc.log_values()
        if self.semantic_method is not None:
            out.update(self.semantic_method.log_values())
        return out

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """The EMA updates of both branches."""
        self.fc.after_step(step, total_steps)
        if self.semantic_method is not None:
            self.semantic_method.after_step(step, total_steps)

    def feature_model(self) -> nn.Module:
        """The fused network (eq. 7), the registered ``arch``: both backbones and ``lambda``."""
        fused = FusedFeatures(self.semantic_backbone, self.fc.backbone, self.lam)
        return fused.to(next(self.fc.backbone.parameters()).device)

    @torch.no_grad()
    def sync_target(self) -> None:
        """Copies the online networks into their targets (after loading weights)."""
        self.fc.sync_target()
        if self.semantic_method is not None:
            self.semantic_method.sync_target()
