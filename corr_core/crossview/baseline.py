"""The baseline matcher: nearest neighbour of mask-pooled features over target proposals.

The representation-matching approach PCC compares against (its Table 1: DINO, DINOv2, SiamMAE
"+SAM"): the source object's dense features are averaged over its mask; each target proposal's
likewise; the proposal of highest cosine similarity is the match, and the object counts as visible
when that similarity exceeds ``threshold``. The confidence is ``(1 + cos) / 2``: monotonic in the
similarity, not a probability, so evaluations choose the existence threshold on tuning data
(``corr eval crossview --calibrate``). Any corr feature network serves: the shipped FC
checkpoint, a random initialisation, an ONNX export.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from corr_core.crossview.base import (
    MatchResult,
    check_inputs,
    compose,
    network_size,
    output_dtype,
    resize_mask,
    resize_rgb,
)
from corr_core.errors import ConfigError
from corr_core.methods.pcc.heatmaps import image_tensor, masks_at
from corr_core.proposals.base import Proposer


class FeatureMatcher:
    """Nearest-neighbour matching of mask-pooled features (see the module docstring).

    Args:
        model: feature network, ``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, C, h, w)``.
        proposer: target proposals (required: the baseline picks one of them).
        device: torch device.
        threshold: cosine similarity above which an object counts as visible.
        max_side: the longer image side the network sees.
    """

    def __init__(self, model: torch.nn.Module, proposer: Proposer, device: str | torch.device = "cpu",
                 threshold: float = 0.5, max_side: int = 320) -> None:
        if proposer is None:
            raise ConfigError("FeatureMatcher needs a proposer (it matches the source object to target proposals)")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.proposer = proposer
        self.threshold, self.max_side = float(threshold), int(max_side)

    @torch.inference_mode()
    def _pooled(self, feat: torch.Tensor, masks: np.ndarray) -> torch.Tensor:
        """``(N, C)`` unit vectors: ``feat`` ``(1, C, h, w)`` averaged over each mask's area at ``h x w``."""
        weights = masks_at(masks, tuple(feat.shape[-2:]), self.device).flatten(1)  # (N, hw)
        pooled = weights @ feat[0].flatten(1).t() / weights.sum(1, keepdim=True).clamp_min(1e-6)
        return F.normalize(pooled, dim=1)

    @torch.inference_mode()
    def match(self, src_rgb: np.ndarray, src_labels: np.ndarray, tgt_rgb: np.ndarray) -> MatchResult:
        """See :class:`~corr_core.crossview.base.Matcher`; no proposal in the target: nothing found."""
        ids = check_inputs(src_rgb, src_labels, tgt_rgb)
        size = tgt_rgb.shape[:2]
        result = MatchResult(np.zeros(size, output_dtype(src_labels)))
        props = self.proposer.propose(tgt_rgb)
        if not ids:
            return result
        if not len(props):
            for i in ids:
                result.existence[i], result.confidence[i], result.masks[i] = False, 0.0, np.zeros(size, bool)
            return result
        src_net = network_size(*src_rgb.shape[:2], self.max_side)
        tgt_net = network_size(*size, self.max_side)
        f_src = self.model(image_tensor(resize_rgb(src_rgb, src_net), self.device)).float()
        f_tgt = self.model(image_tensor(resize_rgb(tgt_rgb, tgt_net), self.device)).float()
        queries = np.stack([resize_mask(src_labels == i, src_net) for i in ids])
        cands = np.stack([resize_mask(m, tgt_net) for m in props.masks])
        sim = (self._pooled(f_src, queries) @ self._pooled(f_tgt, cands).t()).cpu().numpy()  # (ids, props)
        priority = {}
        for row, i in enumerate(ids):
            best = int(np.argmax(sim[row]))
            cos = float(sim[row, best])
            result.masks[i] = props.masks[best].copy()
            result.confidence[i] = (1.0 + cos) / 2.0
            result.existence[i] = cos > self.threshold
            priority[i] = cos
        result.labels = compose(result.masks, priority, result.existence, size, result.labels.dtype)
        return result
