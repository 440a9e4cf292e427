"""CorrFlow: self-supervised correspondence flow by copying colours between frames.

Lai & Xie, "Self-supervised Learning for Video Correspondence Flow", BMVC 2019. A *pointer*
reconstructs a target frame's colours by copying them from a reference frame through an
attention over features: ``Ĉ_t(i) = Σ_j softmax_j(<f_t(i), f_r(j)>) C_r(j)``. Around it:

- colours quantised into ``K = 16`` Lab clusters and reconstruction as classification
  (:mod:`~corr_core.methods.corrflow.colours`, :mod:`~corr_core.methods.corrflow.loss_reconstruction`);
- the information bottleneck: colour dropout / jitter of the input, not of the targets
  (:mod:`~corr_core.methods.corrflow.batches`);
- restricted attention: each target cell attends only to reference cells in a
  ``(2R+1) x (2R+1)`` window around its own position (:class:`RestrictedAttention`);
- recursive training over the clip with scheduled sampling: frame ``t`` is reconstructed from
  frame ``t-1``'s true colours with a probability falling linearly from 0.9 to 0.6 over training,
  else from the model's own reconstruction of ``t-1`` (the test-time situation, so drift is learnt);
- forward-backward cycle consistency as a regulariser, weight 0.1
  (:mod:`~corr_core.methods.corrflow.loss_cycle`; ``cycle=False`` for the ablation).

Deviation, stated: CorrFlow matches the features of a 3x3 convolution (64 channels) after a
stride-4 ResNet-18. Here the pointer matches the registered backbone's own features (the
``arch``), so :meth:`CorrFlowMethod.feature_model` is exactly the network the tracker, ``corr
eval``, ``corr_node`` and ``corr export`` load by the checkpoint's architecture name, and the
features used at test time are the ones the pointer was trained on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from corr_core.errors import ConfigError
from corr_core.methods.corrflow.loss_cycle import CycleConsistencyLoss
from corr_core.methods.corrflow.loss_reconstruction import ColourReconstructionLoss
from corr_core.metrics.features import effective_rank
from corr_core.models import build_backbone


class RestrictedAttention(nn.Module):
    """The pointer: copies values from a reference frame within a local window.

    Affinities are dot products (of L2-normalised features when ``normalize``) divided by
    ``temperature``; each target cell's softmax runs over the reference cells at most ``radius``
    cells away in both directions (CorrFlow's ``13 x 13`` window at ``radius = 6``); cells outside
    the frame are not candidates. ``radius = 0`` removes the restriction.

    The affinity is computed densely and masked (``(B, hw, hw)``), which for the small grids of
    training takes far less memory than unfolding ``(2R+1)^2`` shifted copies of the features.
    """

    def __init__(self, radius: int = 6, temperature: float = 1.0, normalize: bool = False) -> None:
        super().__init__()
        if radius < 0 or temperature <= 0:
            raise ConfigError(f"attention radius must be >= 0 and temperature > 0, got {radius}, {temperature}")
        self.radius, self.temperature, self.normalize = int(radius), float(temperature), bool(normalize)
        self._masks: dict[tuple[int, int, str], torch.Tensor] = {}

    def window(self, h: int, w: int, device: torch.device) -> torch.Tensor | None:
        """``(h*w, h*w)`` bool: reference cell ``j`` is in the window of target cell ``i`` (None: all are)."""
        if self.radius == 0:
            return None
        key = (h, w, str(device))
        if key not in self._masks:
            y, x = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
            y, x = y.reshape(-1), x.reshape(-1)
            self._masks[key] = ((y[:, None] - y[None]).abs() <= self.radius) & ((x[:, None] - x[None]).abs() <= self.radius)
        return self._masks[key]

    def forward(self, query: torch.Tensor, ref: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Copies ``values`` of the reference frame onto the query frame.

        Args:
            query: ``(B, C, h, w)`` float features of the target frame.
            ref: ``(B, C, h, w)`` float features of the reference frame.
            values: ``(B, K, h, w)`` float values (colour distributions) of the reference frame.

        Returns:
            ``(B, K, h, w)`` the values copied onto the target frame (convex combinations).
        """
        b, c, h, w = query.shape
        q, r = query.flatten(2), ref.flatten(2)
        if self.normalize:
            q, r = F.normalize(q, dim=1), F.normalize(r, dim=1)
        aff = torch.bmm(q.transpose(1, 2), r) / self.temperature  # (B, hw target, hw reference)
        mask = self.window(h, w, query.device)
        if mask is not None:
            aff = aff.masked_fill(~mask, float("-inf"))
        attn = aff.softmax(dim=2)
        out = torch.bmm(values.flatten(2), attn.transpose(1, 2))  # (B, K, hw target)
        return out.view(b, values.shape[1], h, w)


class CorrFlowMethod(nn.Module):
    """The CorrFlow objective as a trainable method for :class:`corr_core.train.Trainer`.

    Args:
        arch: registered backbone (its features are the pointer's and the tracker's).
        colours: ``K`` colour classes (CorrFlow: 16); the batches quantise into as many.
        radius: restricted-attention window radius in feature cells (CorrFlow: 6 at stride 4).
        temperature: affinities are divided by it.
        normalize: L2-normalise features before the dot product (the tracker does; CorrFlow does not).
        cycle: add the forward-backward cycle-consistency loss (off: the ablation).
        cycle_weight: its weight (CorrFlow: 0.1).
        teacher_start, teacher_end: scheduled sampling, the probability of copying from the true
            colours of the previous frame, linear over training (CorrFlow: 0.9 -> 0.6).
    """

    name = "corrflow"

    def __init__(
        self,
        arch: str = "resnet18_s8",
        colours: int = 16,
        radius: int = 4,
        temperature: float = 0.05,
        normalize: bool = True,
        cycle: bool = True,
        cycle_weight: float = 0.1,
        teacher_start: float = 0.9,
        teacher_end: float = 0.6,
    ) -> None:
        super().__init__()
        if colours < 2:
            raise ConfigError(f"model.colours must be >= 2, got {colours}")
        for key, p in (("teacher_start", teacher_start), ("teacher_end", teacher_end)):
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"model.{key} is a probability in [0, 1], got {p}")
        self.arch = arch
        self.backbone = build_backbone(arch)
        self.colours = int(colours)
        self.pointer = RestrictedAttention(radius, temperature, normalize)
        self.reconstruction = ColourReconstructionLoss()
        self.cycle_loss = CycleConsistencyLoss(self.reconstruction)
        self.cycle, self.cycle_weight = bool(cycle), float(cycle_weight)
        self.teacher_start, self.teacher_end = float(teacher_start), float(teacher_end)
        # the share of training done, saved with the training state so a resumed run keeps its schedule
        self.register_buffer("progress", torch.zeros(()))

    def online_parameters(self):
        return self.backbone.parameters()

    def teacher_probability(self) -> float:
        """Scheduled sampling: the probability of copying from the true colours now."""
        return self.teacher_start + (self.teacher_end - self.teacher_start) * float(self.progress)

    def soft_colours(self, classes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``(N, H, W)`` int64 classes -> ``(N, K, h, w)`` their share of each cell of the feature grid."""
        onehot = F.one_hot(classes, self.colours).permute(0, 3, 1, 2).float()
        return F.adaptive_avg_pool2d(onehot, size)

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """One loss evaluation: recursive reconstruction over the clip (+ the cycle).

        Args:
            batch: ``frames`` ``(B, T, 3, S, S)`` float, ``colours`` ``(B, T, S, S)`` int64,
                ``teacher`` ``(B, T-1)`` float uniform draws (see
                :class:`~corr_core.methods.corrflow.batches.ClipBatches`).

        Returns:
            ``(loss, logs)``.
        """
        frames, classes, coins = batch["frames"], batch["colours"], batch["teacher"]
        b, t = frames.shape[:2]
        if t < 2:
            raise ConfigError(f"CorrFlow needs clips of >= 2 frames, got {t}")
        flat = self.backbone(frames.flatten(0, 1))
        feats = list(flat.view(b, t, *flat.shape[1:]).unbind(1))
        h, w = flat.shape[-2:]
        soft = self.soft_colours(classes.flatten(0, 1), (h, w)).view(b, t, self.colours, h, w)
        p_true = self.teacher_probability()
        rec = flat.new_zeros(())
        pred = soft[:, 0]
        for i in range(1, t):
            if i == 1:
                ref = soft[:, 0]
            else:  # scheduled sampling: the true colours of frame i-1, or the model's own copy of them
                use_true = (coins[:, i - 1] < p_true).view(b, 1, 1, 1)
                ref = torch.where(use_true, soft[:, i - 1], pred)
            pred = self.pointer(feats[i], feats[i - 1], ref)
            rec = rec + self.reconstruction(pred, classes[:, i])
        loss = rec
        logs = {"reconstruction": float(rec.detach()), "teacher": p_true}
        if self.cycle:
            cyc = self.cycle_loss(self.pointer, feats, soft[:, 0], classes[:, 0])
            loss = loss + self.cycle_weight * cyc
            logs["cycle"] = float(cyc.detach())
        self._last_features = flat.detach()
        return loss, {"loss": float(loss.detach()), **logs}

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Same as :meth:`training_step` (what DistributedDataParallel calls)."""
        return self.training_step(batch)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Advances the scheduled-sampling schedule."""
        self.progress.fill_(min(step / max(total_steps, 1), 1.0))

    def log_values(self) -> dict[str, float]:
        """``feat_erank``: effective rank of the last step's features (a falling value warns of collapse)."""
        feats = getattr(self, "_last_features", None)
        return {} if feats is None else {"feat_erank": effective_rank(feats)}

    def feature_model(self) -> nn.Module:
        """The network used downstream (label propagation): the backbone the pointer matched with."""
        return self.backbone
