"""The baseline matchers: nearest neighbour of mask-pooled features (or colour statistics) over
target proposals.

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
    fit_geometry,
    network_size,
    output_dtype,
    resize_mask,
    resize_rgb,
)
from corr_core.errors import ConfigError
from corr_core.geometry import ViewGeometry, check_epipolar, epipolar_weights
from corr_core.methods.pcc.appearance import colour_similarity
from corr_core.methods.pcc.heatmaps import image_tensor, masks_at
from corr_core.proposals.base import Proposer


class NearestProposalMatcher:
    """Matches each source object to the target proposal of most similar descriptor.

    Subclasses give ``similarity(src_rgb, queries, tgt_rgb, candidates) -> (Q, P)`` cosines of the
    query masks ``(Q, H1, W1)`` and the candidate masks ``(P, H2, W2)`` (bool, each at its image's
    size). The match is the best candidate; the object counts as visible when the cosine exceeds
    ``threshold``; the confidence is ``(1 + cos) / 2``. Given the cameras' geometry, both are
    weighted by how well the candidate lies on the query's epipolar band (``epipolar_sigma``: the
    band's width, a fraction of the target's longer side; ``depth_range``: metres).
    """

    def __init__(self, proposer: Proposer, threshold: float = 0.5, epipolar_sigma: float = 0.03,
                 depth_range: tuple[float, float] = (0.1, 10.0)) -> None:
        if proposer is None:
            raise ConfigError(f"{type(self).__name__} needs a proposer (it matches the source object to target proposals)")
        check_epipolar(epipolar_sigma, depth_range)
        self.proposer = proposer
        self.threshold = float(threshold)
        self.epipolar_sigma, self.depth_range = float(epipolar_sigma), tuple(float(d) for d in depth_range)

    def similarity(self, src_rgb: np.ndarray, queries: np.ndarray, tgt_rgb: np.ndarray,
                   candidates: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def match(self, src_rgb: np.ndarray, src_labels: np.ndarray, tgt_rgb: np.ndarray,
              geometry: ViewGeometry | None = None) -> MatchResult:
        """See :class:`~corr_core.crossview.base.Matcher`; no proposal in the target: nothing found."""
        ids = check_inputs(src_rgb, src_labels, tgt_rgb)
        geometry = fit_geometry(geometry, src_rgb, tgt_rgb)
        size = tgt_rgb.shape[:2]
        result = MatchResult(np.zeros(size, output_dtype(src_labels)))
        props = self.proposer.propose(tgt_rgb)
        if not ids:
            return result
        if not len(props):
            for i in ids:
                result.existence[i], result.confidence[i], result.masks[i] = False, 0.0, np.zeros(size, bool)
            return result
        queries = np.stack([src_labels == i for i in ids])
        score = (1.0 + self.similarity(src_rgb, queries, tgt_rgb, props.masks)) / 2.0
        if geometry is not None:
            score = score * epipolar_weights(geometry, queries, props.masks, self.epipolar_sigma, self.depth_range)
        priority = {}
        for row, i in enumerate(ids):
            best = int(np.argmax(score[row]))
            result.masks[i] = props.masks[best].copy()
            result.confidence[i] = float(score[row, best])
            result.existence[i] = result.confidence[i] > (1.0 + self.threshold) / 2.0
            priority[i] = result.confidence[i]
        result.labels = compose(result.masks, priority, result.existence, size, result.labels.dtype)
        return result


class FeatureMatcher(NearestProposalMatcher):
    """Nearest-neighbour matching of mask-pooled features (see the module docstring).

    Args:
        model: feature network, ``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, C, h, w)``.
        proposer: target proposals (required: the baseline picks one of them).
        device: torch device.
        threshold: cosine similarity above which an object counts as visible.
        max_side: the longer image side the network sees.
        epipolar: ``epipolar_sigma``, ``depth_range`` (see :class:`NearestProposalMatcher`).
    """

    def __init__(self, model: torch.nn.Module, proposer: Proposer, device: str | torch.device = "cpu",
                 threshold: float = 0.5, max_side: int = 320, **epipolar: object) -> None:
        super().__init__(proposer, threshold, **epipolar)  # type: ignore[arg-type]
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.max_side = int(max_side)

    @torch.inference_mode()
    def _pooled(self, feat: torch.Tensor, masks: np.ndarray) -> torch.Tensor:
        """``(N, C)`` unit vectors: ``feat`` ``(1, C, h, w)`` averaged over each mask's area at ``h x w``."""
        weights = masks_at(masks, tuple(feat.shape[-2:]), self.device).flatten(1)  # (N, hw)
        pooled = weights @ feat[0].flatten(1).t() / weights.sum(1, keepdim=True).clamp_min(1e-6)
        return F.normalize(pooled, dim=1)

    @torch.inference_mode()
    def similarity(self, src_rgb: np.ndarray, queries: np.ndarray, tgt_rgb: np.ndarray,
                   candidates: np.ndarray) -> np.ndarray:
        """Cosines of mask-pooled network features, ``(Q, P)``."""
        src_net = network_size(*src_rgb.shape[:2], self.max_side)
        tgt_net = network_size(*tgt_rgb.shape[:2], self.max_side)
        f_src = self.model(image_tensor(resize_rgb(src_rgb, src_net), self.device)).float()
        f_tgt = self.model(image_tensor(resize_rgb(tgt_rgb, tgt_net), self.device)).float()
        q = np.stack([resize_mask(m, src_net) for m in queries])
        c = np.stack([resize_mask(m, tgt_net) for m in candidates])
        return (self._pooled(f_src, q) @ self._pooled(f_tgt, c).t()).cpu().numpy()


class ColourStatsMatcher(NearestProposalMatcher):
    """Nearest-neighbour matching of colour statistics (:mod:`corr_core.methods.pcc.appearance`):
    the weight-free similarity PCC's CPU recipe takes its first pseudo-labels from, as a matcher.

    Args:
        proposer: target proposals.
        threshold: cosine above which an object counts as visible.
    """

    def similarity(self, src_rgb: np.ndarray, queries: np.ndarray, tgt_rgb: np.ndarray,
                   candidates: np.ndarray) -> np.ndarray:
        """Cosines of the masks' colour descriptors, ``(Q, P)``."""
        return colour_similarity(src_rgb, queries, tgt_rgb, candidates)
