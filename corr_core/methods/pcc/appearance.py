"""A weight-free first-stage similarity between proposals: colour statistics (PCC stage 2, CPU).

Seed 000 makes its first pseudo-labels from a colouriser's recolouring heatmaps. A colouriser
trained for the CPU budget (``training/pcc_cpu.yaml``) learns the colours it can guess from the
gray image and copies little from the other view: its cross-view heatmaps were 0 of 38 right on
the training episodes. This similarity is the CPU recipe's replacement for iteration 0 only (the
iterations after it use the trained correspondence model, as in the paper). It needs no weights:

    d(O) = sqrt(normalised [hist_L, hist_a, hist_b]) over the pixels of proposal O, in CIE Lab
    S[i, j] = cos(d(O1,i), d(O2,j))

The square root (Hellinger) keeps a few dominant colours from swamping the rest. Lightness gets
fewer bins than the chroma channels: it changes most with the viewpoint (shading, specular light).
Cycle filtering (``cycle_matches``) then keeps mutual nearest neighbours. What it cannot tell
apart are look-alikes (the same colours): telling those apart is the correspondence model's job,
from the context around the object.
"""

from __future__ import annotations

import cv2
import numpy as np

from corr_core.proposals.base import Proposals


def colour_descriptors(rgb: np.ndarray, masks: np.ndarray, bins: tuple[int, int, int] = (6, 10, 10)) -> np.ndarray:
    """``(N, sum(bins))`` unit descriptors of ``masks`` ``(N, H, W)`` bool in ``rgb`` ``(H, W, 3) uint8``.

    An empty mask gives a zero vector (similarity 0 to everything).
    """
    if masks.shape[1:] != rgb.shape[:2]:
        raise ValueError(f"masks {masks.shape[1:]} do not match the image {rgb.shape[:2]}")
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    # bin index per pixel and channel; OpenCV's 8-bit Lab puts a and b around 128
    edges = [np.linspace(0, 256, bins[0] + 1), np.linspace(64, 192, bins[1] + 1), np.linspace(64, 192, bins[2] + 1)]
    codes = []
    offset = 0
    for c in range(3):
        idx = np.clip(np.searchsorted(edges[c], lab[..., c], side="right") - 1, 0, bins[c] - 1)
        codes.append(idx + offset)
        offset += bins[c]
    out = np.zeros((len(masks), offset), np.float32)
    for k, m in enumerate(masks):
        n = int(m.sum())
        if n == 0:
            continue
        for code in codes:
            out[k] += np.bincount(code[m], minlength=offset)[:offset]
        out[k] = np.sqrt(out[k] / (3 * n))
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norm, 1e-12)


def colour_similarity(src: np.ndarray, src_masks: np.ndarray, tgt: np.ndarray, tgt_masks: np.ndarray,
                      bins: tuple[int, int, int] = (6, 10, 10)) -> np.ndarray:
    """``(N1, N2)`` cosine similarities of the colour descriptors of ``src_masks`` in ``src`` and
    ``tgt_masks`` in ``tgt``."""
    return colour_descriptors(src, src_masks, bins) @ colour_descriptors(tgt, tgt_masks, bins).T


class ColourStatsSimilarity:
    """``similarity(src, src_props, tgt, tgt_props) -> S[i, j]`` of colour descriptors (module docstring).

    Args:
        bins: histogram bins of L, a and b.
    """

    def __init__(self, bins: tuple[int, int, int] = (6, 10, 10)) -> None:
        if len(bins) != 3 or min(bins) < 1:
            raise ValueError(f"bins must be three positive counts (L, a, b), got {bins}")
        self.bins = tuple(int(b) for b in bins)

    def similarity(self, src: np.ndarray, src_props: Proposals, tgt: np.ndarray, tgt_props: Proposals) -> np.ndarray:
        """``(N1, N2)`` cosine similarities of the proposals' colour descriptors."""
        return colour_similarity(src, src_props.masks, tgt, tgt_props.masks, self.bins)
