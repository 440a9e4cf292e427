"""Correspondence heatmaps between the proposals of two views (PCC stage 2 and the iterations).

* From the colouriser (iteration 0): each proposal ``O1,i`` of the source is recoloured and the
  target's colours are predicted again; where the prediction changes is where the target copies
  the colours of ``O1,i`` from: ``H_i(1->2) = |D(E(I1 with O1,i recoloured), E(g2)) -
  D(E(I1), E(g2))|``, summed over RGB and normalised to sum 1. ``Sim(H_i, O2,j) = sum H_i * O2,j``.
* From a correspondence model (iterations >= 1): ``H_i`` is the mask the model predicts in the
  target for the source mask ``O1,i``; the similarity is the IoU of that mask with ``O2,j``.

Both return a similarity matrix ``S[i, j]`` (source proposal i, target proposal j). Recolouring
changes the encoder's features only near the object, so by default the encoder runs on a window
around it (the object's box plus ``margin`` pixels) and its central features replace those of the
unchanged image (``margin=None`` re-encodes the whole image; same result up to the receptive
field beyond the margin).
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from corr_core.methods.pcc.model import PCCNet, head_size, to_gray
from corr_core.proposals.base import Proposals


def recolour(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``rgb`` with the pixels of ``mask`` recoloured: hue turned by 90 degrees, saturation full."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    h = hsv[..., 0].astype(np.int32)
    hsv[..., 0] = np.where(mask, (h + 45) % 180, h).astype(np.uint8)
    hsv[..., 1] = np.where(mask, 255, hsv[..., 1]).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def image_tensor(rgb: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """``(H, W, 3) uint8`` -> ``(1, 3, H, W)`` float in [0, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)[None].float().div_(255.0)


def masks_at(masks: np.ndarray, size: tuple[int, int], device: torch.device | str) -> torch.Tensor:
    """``(N, H, W)`` bool -> ``(N, h, w)`` float area fractions at ``size`` (area average)."""
    t = torch.from_numpy(masks).to(device)[:, None].float()
    return F.adaptive_avg_pool2d(t, size)[:, 0]


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def _window(mask: np.ndarray, margin: int, stride: int) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``: the mask's box grown by ``margin``, aligned to ``stride``, inside the image."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    y0 = max(0, (int(ys.min()) - margin) // stride * stride)
    x0 = max(0, (int(xs.min()) - margin) // stride * stride)
    y1 = min(h, -(-(int(ys.max()) + 1 + margin) // stride) * stride)
    x1 = min(w, -(-(int(xs.max()) + 1 + margin) // stride) * stride)
    return y0, y1, x0, x1


class ColourHeatmaps:
    """Colourisation heatmaps ``H_i(1->2)`` and their similarity to the target proposals.

    Args:
        model: a PCC network with a trained colour head.
        device: torch device.
        batch: recoloured images decoded at a time.
        margin: encoder window around each recoloured object (pixels); None: the whole image.
    """

    def __init__(self, model: PCCNet, device: str | torch.device = "cpu", batch: int = 8,
                 margin: int | None = 48) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch = int(batch)
        self.margin = margin

    @torch.inference_mode()
    def heatmaps(self, src: np.ndarray, props: Proposals, tgt: np.ndarray) -> torch.Tensor:
        """``(N1, h, w)`` float32 heatmaps at the heads' resolution, each summing to 1 (0 if nothing
        changed)."""
        m = self.model
        gray = to_gray(image_tensor(tgt, self.device))
        gray_feat = m.encode(gray)
        src_t = image_tensor(src, self.device)
        src_feat = m.encode(src_t)
        base = m.colourize_features(src_feat, gray_feat, gray)
        enc_stride = m.stride // m.pool
        out = []
        for idx in _chunks(len(props), self.batch):
            feats = []
            for i in idx:
                img = recolour(src, props.masks[i])
                if self.margin is None:
                    feats.append(m.encode(image_tensor(img, self.device))[0])
                    continue
                # encode a window around the object; keep only its inner part (the object and half
                # the margin), whose features do not see the window's zero padding
                y0, y1, x0, x1 = _window(props.masks[i], self.margin, enc_stride * 2)
                iy0, iy1, ix0, ix1 = _window(props.masks[i], self.margin // 2, enc_stride)
                win = m.encode(image_tensor(img[y0:y1, x0:x1], self.device))[0]
                f = src_feat[0].clone()
                a, b = iy0 // enc_stride, -(-iy1 // enc_stride)
                c, d = ix0 // enc_stride, -(-ix1 // enc_stride)
                oy, ox = y0 // enc_stride, x0 // enc_stride
                f[:, a:b, c:d] = win[:, a - oy : b - oy, c - ox : d - ox]
                feats.append(f)
            k = len(feats)
            pred = m.colourize_features(torch.stack(feats), gray_feat.expand(k, -1, -1, -1), gray.expand(k, -1, -1, -1))
            diff = (pred - base).abs().sum(1)
            out.append(diff / diff.flatten(1).sum(1).clamp_min(1e-12)[:, None, None])
        if not out:
            return torch.zeros((0, *base.shape[-2:]), device=self.device)
        return torch.cat(out)

    def similarity(self, src: np.ndarray, src_props: Proposals, tgt: np.ndarray, tgt_props: Proposals) -> np.ndarray:
        """``S[i, j] = sum(H_i * O2,j)``: ``(N1, N2)`` float32 (PCC's Sim with the colour heatmaps)."""
        if not len(src_props) or not len(tgt_props):
            return np.zeros((len(src_props), len(tgt_props)), np.float32)
        heat = self.heatmaps(src, src_props, tgt)
        masks = masks_at(tgt_props.masks, tuple(heat.shape[-2:]), self.device)
        return (heat.flatten(1) @ masks.flatten(1).t()).cpu().numpy().astype(np.float32)


class ModelHeatmaps:
    """Heatmaps from a trained correspondence model: the predicted target mask of each source
    proposal, compared to the target proposals by IoU (PCC's iterations).

    Args:
        model: a PCC network with trained mask and existence heads.
        device: torch device.
        batch: source masks decoded at a time.
        threshold: probability above which a pixel belongs to the predicted mask.
    """

    def __init__(self, model: PCCNet, device: str | torch.device = "cpu", batch: int = 16,
                 threshold: float = 0.5) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch = int(batch)
        self.threshold = float(threshold)

    @torch.inference_mode()
    def predict(self, src: np.ndarray, masks: np.ndarray, tgt: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities ``(N, h, w)`` (heads' resolution) and existence probabilities ``(N,)`` for
        the ``(N, H, W)`` bool source masks."""
        m = self.model
        src_t, tgt_t = image_tensor(src, self.device), image_tensor(tgt, self.device)
        src_feat, tgt_feat = m.encode(src_t), m.encode(tgt_t)
        probs, exist = [], []
        for idx in _chunks(len(masks), self.batch):
            k = len(idx)
            mk = torch.from_numpy(masks[idx.start : idx.stop]).to(self.device)[:, None].float()
            logits, ex = m.correspond_features(src_feat.expand(k, -1, -1, -1), mk, tgt_feat.expand(k, -1, -1, -1),
                                               tgt_t.expand(k, -1, -1, -1), src_t.expand(k, -1, -1, -1))
            probs.append(torch.sigmoid(logits[:, 0]))
            exist.append(torch.sigmoid(ex))
        if not probs:
            h, w = head_size(tgt_t).shape[-2:]
            return torch.zeros((0, h, w), device=self.device), torch.zeros(0, device=self.device)
        return torch.cat(probs), torch.cat(exist)

    def similarity(self, src: np.ndarray, src_props: Proposals, tgt: np.ndarray, tgt_props: Proposals) -> np.ndarray:
        """``S[i, j] = IoU(predicted mask of O1,i, O2,j)`` at the heads' resolution, ``(N1, N2)``."""
        if not len(src_props) or not len(tgt_props):
            return np.zeros((len(src_props), len(tgt_props)), np.float32)
        prob, _ = self.predict(src, src_props.masks, tgt)
        pred = (prob > self.threshold).flatten(1).float()
        props = (masks_at(tgt_props.masks, tuple(prob.shape[-2:]), self.device) >= 0.5).flatten(1).float()
        inter = pred @ props.t()
        union = pred.sum(1, keepdim=True) + props.sum(1)[None] - inter
        return (inter / union.clamp_min(1.0)).cpu().numpy().astype(np.float32)
