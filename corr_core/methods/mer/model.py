"""MER: motion-enhanced frame reconstruction (seed 002, Zhou et al.) as a method of the trainer.

A target frame's Lab colours (at feature resolution) are reconstructed from ``R`` earlier
reference frames of its video (Sec. 3.1): each reference gives a reconstruction through a softmax
over the affinities of the target's queries to its keys within each query's sampling range
(eqs. 1-2; the Multi-Cluster Sampler, Sec. 3.3, sets the ranges), and the reconstructions are
fused by the per-pixel median (eq. 3's "most frequent value", for continuous colours). The loss
(eq. 21) is the weight-map smooth-L1 (eq. 20) plus ``pn_weight`` times the positive-negative loss
against the online memory bank of other videos' frames (eq. 17).

Every frame enters the encoder fused with its optical flow (eq. 5, :class:`FlowFusion`); the
queries and keys come from the Value Extraction Network (eqs. 6-12). Downstream (tracker, export)
the feature network is the encoder alone on RGB frames: the flow fusion is the identity without
flow (see :mod:`corr_core.methods.mer.engine`). At test time MER uses long- and short-term
references (Sec. 4.1), which the tracker's long-term memory provides: see :data:`MER_PROPAGATION`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from corr_core.methods.mer.bank import MemoryBank
from corr_core.methods.mer.contrastive import PositiveNegativeLoss
from corr_core.methods.mer.engine import FlowFusion, ValueExtractionNetwork, grid_coords
from corr_core.methods.mer.sampler import MultiClusterSampler
from corr_core.methods.mer.weightmap import WeightMapLoss
from corr_core.metrics.features import effective_rank
from corr_core.models import build_backbone

#: Test-time references of MER (Sec. 4.1: long-term frames such as the first and the fifth, and the
#: last few frames as short-term ones) as tracker settings (``corr eval vos --long-term-every 5
#: --long-term-size 2 --context 5``; the same parameters of ``corr_node``).
MER_PROPAGATION: dict[str, Any] = {"long_term_every": 5, "long_term_size": 2, "context": 5}


class MERMethod(nn.Module):
    """The MER objective wrapped as a trainable method for :class:`corr_core.train.Trainer`.

    Args:
        arch: registered backbone name (the encoder).
        temperature: softmax temperature of the reconstruction affinities.
        flow: fuse each frame with its optical flow (eq. 5); False: RGB only (ablation).
        alpha_init: starting weight of the flow.
        value_net: use the value map, its embedding and the positional encoding (eqs. 6-12);
            False: queries and keys are the projected features alone (ablation).
        window, beta, drop_key: the Value Extraction Network's window (cells), threshold and
            DropKey probability.
        sampler: use the Multi-Cluster Sampler; False: every query samples within ``radius``
            (the ablation "without the Multi-Cluster Sampler").
        clusters, threshold, kmeans_iters, expand, min_radius, radius: the sampler's settings
            (see :class:`MultiClusterSampler`).
        bank_size, bank_points, neg_frames: memory bank frames, cells kept per frame, and bank
            frames drawn as negatives per step.
        pn_weight: ``mu`` of eq. 21 (0: no positive-negative loss).
        weight_map: weigh the reconstruction loss by the value map (eq. 20); False: plain
            smooth-L1 (eq. 18).
        gamma_start, gamma_end: the weight map's ``gamma`` at the first and the last step (linear).
        color_scale: factor on the colours in the smooth-L1 (MAST's 20).
    """

    name = "mer"

    def __init__(
        self,
        arch: str = "resnet18_s8",
        temperature: float = 0.05,
        flow: bool = True,
        alpha_init: float = 0.5,
        value_net: bool = True,
        window: int = 4,
        beta: float = 0.6,
        drop_key: float = 0.1,
        sampler: bool = True,
        clusters: int = 5,
        threshold: float = 0.45,
        kmeans_iters: int = 5,
        expand: float = 2.0,
        min_radius: float = 1.0,
        radius: float = 6.0,
        bank_size: int = 256,
        bank_points: int = 32,
        neg_frames: int = 8,
        pn_weight: float = 0.5,
        weight_map: bool = True,
        gamma_start: float = 0.0,
        gamma_end: float = 1.0,
        color_scale: float = 20.0,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.backbone = build_backbone(arch)
        c = self.backbone.out_channels
        self.fusion = FlowFusion(alpha_init)
        self.value_net = ValueExtractionNetwork(c, window, beta, drop_key)
        self.sampler = MultiClusterSampler(sampler, clusters, threshold, kmeans_iters, expand, min_radius, radius)
        self.bank = MemoryBank(bank_size, bank_points, c)
        self.pn_loss = PositiveNegativeLoss()
        self.wm_loss = WeightMapLoss(color_scale)
        self.temperature = float(temperature)
        self.use_flow, self.use_value, self.use_weight_map = bool(flow), bool(value_net), bool(weight_map)
        self.neg_frames, self.pn_weight = int(neg_frames), float(pn_weight)
        self.gamma_start, self.gamma_end = float(gamma_start), float(gamma_end)
        self.register_buffer("gamma", torch.tensor(self.gamma_start))  # saved with last.*: resume is exact
        # parts an ablation leaves out get no gradient (DistributedDataParallel needs every trained
        # parameter to take part in the loss)
        if not self.use_flow:
            self.fusion.requires_grad_(False)
        if not self.use_value:
            self.value_net.phi_v.requires_grad_(False)
            self.value_net.pos_scale.requires_grad_(False)

    def online_parameters(self):
        yield from (p for p in self.parameters() if p.requires_grad)

    def encode(self, frames: torch.Tensor, flows: torch.Tensor | None) -> torch.Tensor:
        """``(B, T, 3, S, S)`` frames (and ``(B, T, 2, S, S)`` flows) -> ``(B, T, C, h, w)`` unit features."""
        b, t = frames.shape[:2]
        x = self.fusion(frames.flatten(0, 1), None if flows is None or not self.use_flow else flows.flatten(0, 1))
        f = F.normalize(self.backbone(x), dim=1)
        return f.view(b, t, *f.shape[1:])

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """One loss evaluation.

        Args:
            batch: ``frames`` ``(B, T, 3, S, S)`` RGB in [0, 1] (references first, the target last),
                ``flows`` ``(B, T, 2, S, S)``, ``lab`` ``(B, T, 3, S, S)``, ``video`` ``(B,)`` int64.

        Returns:
            ``(loss, logs)``.
        """
        frames, lab, video = batch["frames"], batch["lab"], batch["video"]
        f = self.encode(frames, batch.get("flows"))
        b, t, c, h, w = f.shape
        r, n = t - 1, h * w
        colours = F.adaptive_avg_pool2d(lab.flatten(0, 1), (h, w)).view(b, t, 3, n)
        target, refs = f[:, -1], f[:, :-1]
        coords = grid_coords(h, w, f.device)
        with torch.no_grad():
            value = self.value_net.value_map(target, refs) if self.use_value else torch.ones(b, n, device=f.device)
            radii = self.sampler.radii(target)
        pos = coords if self.use_value else None
        queries = self.value_net.query(target, value if self.use_value else None, pos)  # (B, N, C)
        keys = self.value_net.key(refs.flatten(3).transpose(2, 3), pos)  # (B, R, N, C)
        logits = torch.einsum("bnc,brmc->brnm", queries, keys) / self.temperature  # (B, R, N, N)
        allowed = self.sampler.window(radii, h, w)[:, None].expand(b, r, n, n)
        drop = self.value_net.drop_keys(logits.shape, logits.device)
        keep = allowed if drop is None else allowed & drop
        keep = torch.where(keep.any(-1, keepdim=True), keep, allowed)  # never drop all of a query's keys
        attn = logits.masked_fill(~keep, torch.finfo(logits.dtype).min).softmax(-1)
        recon = torch.einsum("brnm,brcm->brcn", attn, colours[:, :-1])  # (B, R, 3, N)
        recon = recon.median(dim=1).values if r > 2 else recon.mean(dim=1)  # eq. 3 (median of 1-2 = mean)
        wm = self.wm_loss(recon, colours[:, -1], value if self.use_weight_map else None, self.gamma)
        loss, logs = wm, {}
        if self.pn_weight > 0:
            pn = self._positive_negative(queries, logits, keep, video)
            loss = wm + self.pn_weight * pn
            logs["pn"] = float(pn.detach())
        if self.training:
            self.bank.push(target.detach().flatten(2).transpose(1, 2), coords, video)
        self._last_features = target.detach()
        with torch.no_grad():
            rec_l1 = float((recon - colours[:, -1]).abs().mean())
        logs.update({"loss": float(loss.detach()), "wm": float(wm.detach()), "rec_l1": rec_l1,
                     "gamma": float(self.gamma), "range": float(radii.mean()), "value": float(value.mean()),
                     "alpha": float(self.fusion.alpha.detach())})
        return loss, logs

    def _positive_negative(self, queries: torch.Tensor, logits: torch.Tensor, keep: torch.Tensor,
                           video: torch.Tensor) -> torch.Tensor:
        """Eq. 17 with the bank's frames of other videos as negatives."""
        b, r, n, m = logits.shape
        pos = logits.permute(0, 2, 1, 3).reshape(b, n, r * m)
        pos_keep = keep.permute(0, 2, 1, 3).reshape(b, n, r * m)
        if self.bank.size == 0 or self.neg_frames <= 0:
            return self.pn_loss(pos, pos_keep, None, None)
        nf, ncoords, nvid = self.bank.sample(self.neg_frames)
        if nvid.numel() == 0:
            return self.pn_loss(pos, pos_keep, None, None)
        p = nf.shape[1]
        nkeys = self.value_net.key(nf.flatten(0, 1), ncoords.flatten(0, 1) if self.use_value else None)
        neg = torch.einsum("bnc,qc->bnq", queries, nkeys) / self.temperature
        neg_keep = (nvid[None, :] != video[:, None]).repeat_interleave(p, dim=1)  # (B, F*P)
        return self.pn_loss(pos, pos_keep, neg, neg_keep)

    def log_values(self) -> dict[str, float]:
        """``feat_erank``: effective rank of the last target features (a falling value warns of collapse)."""
        feats = getattr(self, "_last_features", None)
        return {} if feats is None else {"feat_erank": effective_rank(feats)}

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Same as :meth:`training_step` (what DistributedDataParallel calls)."""
        return self.training_step(batch)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Moves the weight map's ``gamma`` from ``gamma_start`` to ``gamma_end`` (linear)."""
        frac = min(1.0, step / max(total_steps, 1))
        self.gamma.fill_(self.gamma_start + (self.gamma_end - self.gamma_start) * frac)

    def feature_model(self) -> nn.Module:
        """The network used downstream: the encoder on RGB frames (flow fusion is the identity
        without flow)."""
        return self.backbone
