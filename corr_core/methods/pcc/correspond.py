"""PCC stage 3: the correspondence model, trained on cycle-consistent pseudo-labels.

Given the source view, a mask in it and the target view, the network predicts the mask of the same
object in the target (Dice + BCE) and whether the object is visible there at all (existence,
BCE). A pseudo-label ``(O1,i, O2,j)`` gives a positive pair in both directions. Negatives for the
existence head need no labels either:

* *erased*: the matched object is removed from the target (``cv2.inpaint`` fills its pixels from
  their surroundings), so the object is certainly absent — the case of an object hidden from a
  camera;
* *elsewhere*: the target is a view of another scene.

With ``synthetic`` > 0 some positives are made from one view and a random perspective warp of it
(the proposal's mask warped with it): correspondence known by construction, so the model learns to
find a masked thing again under a change of view even where the pseudo-labels are few.

Two more edits of a cross-view target teach what colour cannot (both need no labels):

* *smudge* (``smudge_prob``): another proposal of the target is painted out, in positives and
  negatives alike. Without it, inpainting marks only the *erased* negatives, and the existence head
  learns to look for the smudge instead of the object: on held-out episodes, where a hidden object
  leaves no smudge, it called nearly every hidden object visible.
* *decoy* (``decoy_prob``): a copy of the matched object is pasted onto the place of another
  proposal of the target, a look-alike by construction. Half of these items keep the object where
  it is (positive: find the one that sits where the source's context says), half move it (the
  object is painted out and only the copy remains: negative, the look-alike of a hidden object).
  Only the layout around the object tells the two apart, which is what look-alikes need.

*Out of view* (``crop_prob``): the target becomes a window of itself, enlarged back to the view's
size, that either leaves the matched object out (negative: the object is outside the camera's field
of view, the commonest absence on a robot) or holds all of it (positive, its mask cropped alike, so
that the zoom alone says nothing). Unlike *erased* negatives these leave no painted trace: the
existence head has to look for the object itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from corr_core.errors import ConfigError, DataError
from corr_core.methods.pcc.colorize import colour_jitter, random_warp, to_batch, warp
from corr_core.methods.pcc.loss_mask import CorrespondenceLoss
from corr_core.methods.pcc.model import build_pcc_model
from corr_core.methods.pcc.pseudolabel import ViewStore
from corr_core.methods.pcc.scenes import View
from corr_core.train.data import RandomStream


def erase(rgb: np.ndarray, mask: np.ndarray, grow: int = 3) -> np.ndarray:
    """``rgb`` with the object of ``mask`` (grown by ``grow`` pixels) painted over from its surroundings."""
    m = mask.astype(np.uint8)
    if grow > 0:
        m = cv2.dilate(m, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return cv2.inpaint(np.ascontiguousarray(rgb), m, 5, cv2.INPAINT_TELEA)


def paste_copy(canvas: np.ndarray, rgb: np.ndarray, mask: np.ndarray, place: np.ndarray) -> np.ndarray:
    """``canvas`` with the pixels of ``mask`` in ``rgb`` pasted so that their centre lands on the
    centre of ``place`` (a mask of the same size; what falls outside the image is cut off)."""
    h, w = mask.shape
    (y0, x0), (y1, x1) = np.argwhere(mask).mean(0), np.argwhere(place).mean(0)
    dy, dx = int(round(y1 - y0)), int(round(x1 - x0))
    ys, xs = np.nonzero(mask)
    ty, tx = ys + dy, xs + dx
    keep = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
    out = canvas.copy()
    out[ty[keep], tx[keep]] = rgb[ys[keep], xs[keep]]
    return out


def out_of_view(rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator, keep: bool,
                scale: tuple[float, float] = (0.3, 0.75)) -> tuple[np.ndarray, np.ndarray] | None:
    """A window of ``rgb`` (sides a random share in ``scale`` of the image's, its aspect kept)
    resized back to the image's size that holds all of the object of ``mask`` (``keep``) or none of
    it, with the mask cut and resized alike (nearest). None when no window of that size can: an
    empty mask, or an object too large or too central to leave out."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return None
    top, bottom, left, right = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    s = float(rng.uniform(*scale))
    ch, cw = max(2, int(round(h * s))), max(2, int(round(w * s)))
    # ranges of the window's corner (y0, x0): all of the object's box inside, or the window beside it
    if keep:
        spans = [((max(0, bottom - ch), min(top, h - ch)), (max(0, right - cw), min(left, w - cw)))]
    else:
        rows, cols = (0, h - ch), (0, w - cw)
        spans = [((0, top - ch), cols), ((bottom, h - ch), cols), (rows, (0, left - cw)), (rows, (right, w - cw))]
    spans = [sp for sp in spans if sp[0][0] <= sp[0][1] and sp[1][0] <= sp[1][1]]
    if not spans:
        return None
    (ya, yb), (xa, xb) = spans[int(rng.integers(len(spans)))]
    y0, x0 = int(rng.integers(ya, yb + 1)), int(rng.integers(xa, xb + 1))
    window = cv2.resize(np.ascontiguousarray(rgb[y0 : y0 + ch, x0 : x0 + cw]), (w, h), interpolation=cv2.INTER_LINEAR)
    cut = cv2.resize(mask[y0 : y0 + ch, x0 : x0 + cw].astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return window, cut.astype(mask.dtype)


#: the probabilities of the target edits (keyword arguments of :class:`CorrespondenceBatches` and
#: keys of a recipe's ``correspond`` section, all 0 by default)
EDIT_PROBS = ("smudge_prob", "decoy_prob", "crop_prob")


class CorrespondenceBatches(RandomStream):
    """Endless batches of (source, source mask, target, target mask, exists) from pseudo-labels.

    Yields ``src``/``tgt`` ``(B, 3, H, W)`` float in [0, 1], ``src_mask``/``tgt_mask`` ``(B, 1, H,
    W)`` float, ``exists`` ``(B,)`` float.

    Args:
        records: pseudo-label records (:func:`~corr_core.methods.pcc.pseudolabel.read_pseudolabels`).
        store: the views' images and proposals (the ones the records index).
        batch_size: items per batch.
        cross_view: probability of drawing from a cross-view record (when there are any).
        erase_prob: probability of an *erased* negative.
        elsewhere_prob: probability of an *elsewhere* negative.
        jitter: the same random colour change on both views.
        seed: random seed.
        synthetic: share of items made from one pseudo-labelled view and a random warp of it.
        synthetic_top: a synthetic item's mask is one of the view's ``synthetic_top`` best proposals.
        smudge_prob: probability that another proposal of a cross-view target is painted out.
        decoy_prob: probability of a *decoy* item (a copy of the object pasted elsewhere).
        crop_prob: probability that a pseudo-labelled item's target becomes an *out of view*
            window (half of them without the object: negatives; half with it: positives).

    Raises:
        DataError: no record holds a match.
    """

    def __init__(self, records: Sequence[dict[str, Any]], store: ViewStore, batch_size: int,
                 cross_view: float = 0.7, erase_prob: float = 0.15, elsewhere_prob: float = 0.1,
                 jitter: bool = True, seed: int = 0, synthetic: float = 0.0, synthetic_top: int = 12,
                 smudge_prob: float = 0.0, decoy_prob: float = 0.0, crop_prob: float = 0.0) -> None:
        usable = [r for r in records if r["matches"]]
        if not usable:
            raise DataError("PCC: the pseudo-labels hold no match to train on")
        if batch_size < 1 or not 0 <= erase_prob + elsewhere_prob < 1:
            raise ConfigError(f"PCC batches: batch_size >= 1 and erase + elsewhere probabilities < 1 needed, got "
                              f"{batch_size}, {erase_prob}, {elsewhere_prob}")
        self.cross = [r for r in usable if r["src"].cam != r["tgt"].cam]
        self.same = [r for r in usable if r["src"].cam == r["tgt"].cam]
        self.cross_view = float(cross_view) if self.cross and self.same else float(bool(self.cross))
        self.store, self.batch_size = store, int(batch_size)
        self.erase_prob, self.elsewhere_prob, self.jitter = float(erase_prob), float(elsewhere_prob), bool(jitter)
        self.views = [View(s.name, c, t) for s in store.scenes.values() for c in s.cameras for t in range(s.num_frames)]
        if not 0.0 <= synthetic < 1.0:
            raise ConfigError(f"PCC batches: synthetic must be a share in [0, 1), got {synthetic}")
        self.synthetic, self.synthetic_top = float(synthetic), int(synthetic_top)
        for name, value in zip(EDIT_PROBS, (smudge_prob, decoy_prob, crop_prob), strict=True):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"PCC batches: {name} must be a probability in [0, 1], got {value}")
        self.smudge_prob, self.decoy_prob, self.crop_prob = float(smudge_prob), float(decoy_prob), float(crop_prob)
        self.labelled = sorted({r[k] for r in usable for k in ("src", "tgt")}, key=View.key)
        self.rng = np.random.default_rng(seed)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def _synthetic(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float] | None:
        view = self.labelled[int(self.rng.integers(len(self.labelled)))]
        props = self.store.proposals(view)
        if not len(props):
            return None
        order = np.argsort(-props.scores, kind="stable")[: self.synthetic_top]
        mask = props.masks[int(order[int(self.rng.integers(len(order)))])]
        rgb = self.store.rgb(view)
        matrix = random_warp(rgb.shape[:2], self.rng)
        tgt, tgt_mask = warp(rgb, matrix), warp(mask, matrix, nearest=True)
        if tgt_mask.sum() < 0.5 * mask.sum():  # warped mostly out of the image
            return None
        if self.rng.random() < self.erase_prob:
            return rgb, mask, erase(tgt, tgt_mask), np.zeros_like(tgt_mask), 0.0
        return rgb, mask, tgt, tgt_mask, 1.0

    def _item(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        if self.synthetic and self.rng.random() < self.synthetic:
            for _ in range(4):
                item = self._synthetic()
                if item is not None:
                    return item
        pool = self.cross if self.rng.random() < self.cross_view else self.same
        rec = pool[int(self.rng.integers(len(pool)))]
        i, j = rec["matches"][int(self.rng.integers(len(rec["matches"])))]
        src, tgt = rec["src"], rec["tgt"]
        if self.rng.random() < 0.5:  # a pseudo-label holds both ways
            src, tgt, i, j = tgt, src, j, i
        src_rgb, tgt_rgb = self.store.rgb(src), self.store.rgb(tgt)
        src_mask = self.store.proposals(src).masks[i]
        tgt_props = self.store.proposals(tgt).masks
        tgt_mask = tgt_props[j]
        if src.cam != tgt.cam and (self.decoy_prob or self.smudge_prob):  # synchronised views: one layout
            others = [k for k in range(len(tgt_props)) if k != j and not (tgt_props[k] & tgt_mask).any()]
            if others and self.rng.random() < self.decoy_prob:
                place = tgt_props[others[int(self.rng.integers(len(others)))]]
                if self.rng.random() < 0.5:  # moved: only the copy is left
                    return src_rgb, src_mask, paste_copy(erase(tgt_rgb, tgt_mask), tgt_rgb, tgt_mask, place), \
                        np.zeros_like(tgt_mask), 0.0
                decoy = paste_copy(tgt_rgb, tgt_rgb, tgt_mask, place)
                decoy[tgt_mask] = tgt_rgb[tgt_mask]  # the copy never covers the object itself
                return src_rgb, src_mask, decoy, tgt_mask, 1.0
            if others and self.rng.random() < self.smudge_prob:
                smudged = erase(tgt_rgb, tgt_props[others[int(self.rng.integers(len(others)))]])
                smudged[tgt_mask] = tgt_rgb[tgt_mask]
                tgt_rgb = smudged
        u = self.rng.random()
        if u < self.erase_prob:
            return src_rgb, src_mask, erase(tgt_rgb, tgt_mask), np.zeros_like(tgt_mask), 0.0
        if u < self.erase_prob + self.elsewhere_prob:
            others = [v for v in self.views[:: max(1, len(self.views) // 512)] if v.scene != src.scene]
            if others:
                other = others[int(self.rng.integers(len(others)))]
                return src_rgb, src_mask, self.store.rgb(other), np.zeros_like(tgt_mask), 0.0
        if self.crop_prob and self.rng.random() < self.crop_prob:
            keep = bool(self.rng.random() < 0.5)
            window = out_of_view(tgt_rgb, tgt_mask, self.rng, keep)
            if window is not None:
                return src_rgb, src_mask, window[0], window[1], float(keep)
        return src_rgb, src_mask, tgt_rgb, tgt_mask, 1.0

    def __next__(self) -> dict[str, torch.Tensor]:
        items = [self._item() for _ in range(self.batch_size)]
        srcs, tgts = [], []
        for s, _, t, _, _ in items:
            if self.jitter:
                s, t = colour_jitter([s, t], self.rng)
            srcs.append(s)
            tgts.append(t)

        def masks(k: int) -> torch.Tensor:
            return torch.from_numpy(np.stack([it[k] for it in items]))[:, None].float()

        return {"src": to_batch(srcs), "src_mask": masks(1), "tgt": to_batch(tgts), "tgt_mask": masks(3),
                "exists": torch.tensor([it[4] for it in items], dtype=torch.float32)}


class CorrespondMethod(nn.Module):
    """The correspondence model for :class:`~corr_core.train.trainer.Trainer`.

    Args:
        arch: PCC architecture (start it from the colouriser with the recipe's ``init``).
        existence_weight: weight of the existence loss.
    """

    name = "pcc_correspond"

    def __init__(self, arch: str = "pcc_resnet18_l2", existence_weight: float = 0.5) -> None:
        super().__init__()
        self.arch = arch
        self.model = build_pcc_model(arch)
        self.loss_fn = CorrespondenceLoss(existence_weight)

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """``batch`` from :class:`CorrespondenceBatches` -> ``(loss, logs)``."""
        logits, exist = self.model.correspond(batch["src"], batch["src_mask"], batch["tgt"])
        loss, logs = self.loss_fn(logits, exist, batch["tgt_mask"], batch["exists"])
        with torch.no_grad():
            acc = ((exist > 0) == (batch["exists"] > 0.5)).float().mean()
        return loss, {"loss": float(loss.detach()), **logs, "exist_acc": float(acc)}

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.training_step(batch)

    def feature_model(self) -> nn.Module:
        """The whole PCC network."""
        return self.model
