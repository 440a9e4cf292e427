"""PCC's correspondence model as a :class:`~corr_core.crossview.base.Matcher`.

For each id of the source labels the network predicts its mask in the target and the probability
that it is visible there at all. With a proposer, a predicted mask is *snapped* to the target
proposal it overlaps most (when their IoU reaches ``snap_iou``): proposals follow object edges
better than a mask predicted at a quarter of the image size.

Two choices made on tuning episodes (``corr pcc score`` stores them in the checkpoint with the
existence threshold calibrated for them, so a node uses what was calibrated):

* ``verify="colour"``: the colour statistics of the source object
  (:func:`~corr_core.methods.pcc.appearance.colour_similarity`, cosine c in [-1, 1]) check what the
  network found. A proposal's score becomes soft IoU x max(c, 0)^2, and the confidence becomes
  existence probability x max(c, 0) of the chosen mask: an object hidden from the target sends the
  network to some other thing, whose colours rarely agree.
* ``one_to_one``: the objects of one source view take different target proposals (an assignment
  maximising the summed score), since two objects cannot be the same pixels. Where a look-alike
  pair competes for one proposal, the weaker claim moves to its next choice, and its confidence
  drops with its colour agreement.

Given the two cameras' geometry (``match(..., geometry=)``), proposal scores and the confidence are
weighted by how well the proposal lies on the query's epipolar band
(:mod:`corr_core.geometry`): what tells a look-alike from the object.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from corr_core.crossview.base import (
    MatchResult,
    array_key,
    check_inputs,
    compose,
    fit_geometry,
    network_size,
    output_dtype,
    resize_mask,
    resize_rgb,
)
from corr_core.errors import ConfigError
from corr_core.geometry import (
    ViewGeometry,
    candidate_weights,
    check_epipolar,
    epipolar_maps,
    map_to,
)
from corr_core.methods.pcc.appearance import colour_descriptors
from corr_core.methods.pcc.heatmaps import image_tensor
from corr_core.proposals.base import Proposer

SELECT = ("snap", "proposal")
VERIFY = ("none", "colour")
#: the matcher settings a calibrated existence threshold depends on (stored with it in the checkpoint)
CALIBRATED_SETTINGS = ("verify", "one_to_one")
#: what a threshold stored without settings was calibrated with (checkpoints scored before them)
LEGACY_SETTINGS = {"verify": "none", "one_to_one": False}


class CrossViewMatcher:
    """Finds the objects of a source view in a target view with a PCC correspondence model.

    Args:
        model: a :class:`~corr_core.methods.pcc.model.PCCNet` with trained mask and existence heads.
        device: torch device.
        proposer: target proposals to snap masks to (None: the model's masks as they are).
        snap_iou: least IoU between a predicted mask and a proposal for the proposal to replace it
            (``select="snap"``).
        select: ``"snap"``: threshold the predicted mask, then replace it by the proposal it overlaps
            most; ``"proposal"``: the proposal of highest soft IoU with the predicted probability map
            (seed 000's Sim(H, O) with a size normalisation), whenever the map has any mass.
        threshold: mask probability above which a pixel belongs to the object (and existence
            probability above which it counts as visible, unless ``existence_threshold`` is given).
        existence_threshold: existence probability above which an object counts as visible
            (:meth:`from_checkpoint` takes the one calibrated on tuning episodes and stored in the
            checkpoint, ``corr pcc score``).
        geometry_threshold: the same for matches given the cameras' geometry (their confidence
            also holds the epipolar weight); None: ``existence_threshold``.
        depth_threshold: the same for matches given the geometry and the source camera's depth
            (a narrower band); None: ``geometry_threshold``.
        max_side: the longer image side the network sees (images are resized to it, to multiples
            of the network's stride; masks come back at each image's own size).
        min_pixels: source objects smaller than this (at the network size) are reported not found.
        batch: source objects decoded at a time.
        verify: ``"colour"``: check the network's choice with colour statistics (module docstring);
            ``"none"``: the network alone.
        one_to_one: objects of one source view take different target proposals (``select="proposal"``).
        epipolar_sigma: with geometry, the epipolar band's width (a fraction of the target's longer side).
        depth_range: with geometry, ``(near, far)`` metres from the source camera where objects can be.

    Example:
        >>> matcher = CrossViewMatcher.from_checkpoint("corr_core/assets/checkpoints/pcc_resnet18_l2_prior")  # doctest: +SKIP
        >>> result = matcher.match(ego_rgb, ego_labels, exo_rgb)  # doctest: +SKIP
        >>> result.labels, result.existence, result.confidence  # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", proposer: Proposer | None = None,
                 snap_iou: float = 0.3, threshold: float = 0.5, max_side: int = 320, min_pixels: int = 4,
                 batch: int = 16, select: str = "proposal", existence_threshold: float | None = None,
                 geometry_threshold: float | None = None, depth_threshold: float | None = None,
                 verify: str = "colour", one_to_one: bool = True, epipolar_sigma: float = 0.03,
                 depth_range: tuple[float, float] = (0.1, 10.0)) -> None:
        if not 0.0 < threshold < 1.0 or not 0.0 <= snap_iou <= 1.0:
            raise ConfigError(f"CrossViewMatcher: threshold must be in (0, 1) and snap_iou in [0, 1], got "
                              f"{threshold}, {snap_iou}")
        for name, value in (("existence_threshold", existence_threshold), ("geometry_threshold", geometry_threshold),
                            ("depth_threshold", depth_threshold)):
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"CrossViewMatcher: {name} must be in [0, 1), got {value}")
        # each unset threshold falls back on the one before it
        self.existence_threshold = float(threshold if existence_threshold is None else existence_threshold)
        self.geometry_threshold = self.existence_threshold if geometry_threshold is None else float(geometry_threshold)
        self.depth_threshold = self.geometry_threshold if depth_threshold is None else float(depth_threshold)
        if select not in SELECT:
            raise ConfigError(f"CrossViewMatcher: select must be one of {SELECT}, got {select!r}")
        self.select = select
        if verify not in VERIFY:
            raise ConfigError(f"CrossViewMatcher: verify must be one of {VERIFY}, got {verify!r}")
        self.verify, self.one_to_one = verify, bool(one_to_one)
        check_epipolar(epipolar_sigma, depth_range)
        self.epipolar_sigma, self.depth_range = float(epipolar_sigma), tuple(float(d) for d in depth_range)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.proposer = proposer
        self.snap_iou, self.threshold = float(snap_iou), float(threshold)
        self.max_side, self.min_pixels, self.batch = int(max_side), int(min_pixels), int(batch)
        self._predictions: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, device: str = "cpu", stored: bool = True,
                        **kwargs: object) -> CrossViewMatcher:
        """A matcher on a PCC correspondence checkpoint. With ``stored``, its existence threshold and
        the settings of :data:`CALIBRATED_SETTINGS` it was calibrated with (and the thresholds for
        matches with geometry and with geometry and depth, where stored) are the ones
        ``corr pcc score`` stored in the checkpoint (calibrated on tuning episodes), unless given;
        a threshold stored without settings was calibrated on the network alone
        (:data:`LEGACY_SETTINGS`). Without ``stored`` (a caller that calibrates itself), the
        constructor's defaults hold unless given.

        Raises:
            CheckpointError: missing or foreign checkpoint; a colouriser (no trained mask head).
        """
        from corr_core.errors import CheckpointError
        from corr_core.methods.pcc import load_pcc_model

        model, meta = load_pcc_model(checkpoint, device)
        if meta.get("method") != "pcc_correspond":
            raise CheckpointError(
                f"{checkpoint}: a {meta.get('method')!r} checkpoint has no trained correspondence heads; give a "
                "model trained by `corr pcc train` or `corr pcc iterate` (RUN/iter_N/model.safetensors)"
            )
        if stored and kwargs.get("existence_threshold") is None and meta.get("existence_threshold") is not None:
            kwargs["existence_threshold"] = float(meta["existence_threshold"])
            for key, arg in (("existence_threshold_geometry", "geometry_threshold"),
                             ("existence_threshold_depth", "depth_threshold")):
                if meta.get(key) is not None:
                    kwargs.setdefault(arg, float(meta[key]))
            stored = meta.get("matcher") or LEGACY_SETTINGS
            for key in CALIBRATED_SETTINGS:
                if key in stored:
                    kwargs.setdefault(key, stored[key])
        return cls(model, device, **kwargs)  # type: ignore[arg-type]

    @torch.inference_mode()
    def match(self, src_rgb: np.ndarray, src_labels: np.ndarray, tgt_rgb: np.ndarray,
              geometry: ViewGeometry | None = None) -> MatchResult:
        """See :class:`~corr_core.crossview.base.Matcher`. An empty source (no id) or an object too
        small to see gives an explicit "not found" (existence False, confidence 0), never an error.

        Raises:
            ShapeMismatchError / DataError: malformed inputs (see ``check_inputs``).
        """
        ids = check_inputs(src_rgb, src_labels, tgt_rgb)
        geometry = fit_geometry(geometry, src_rgb, tgt_rgb)
        size = tgt_rgb.shape[:2]
        dtype = output_dtype(src_labels)
        stride = int(self.model.stride)
        src_net = network_size(*src_rgb.shape[:2], self.max_side, stride)
        tgt_net = network_size(*size, self.max_side, stride)
        src_small = resize_rgb(src_rgb, src_net)
        queries = [(i, resize_mask(src_labels == i, src_net)) for i in ids]
        result = MatchResult(np.zeros(size, dtype))
        for i, m in queries:
            if m.sum() < self.min_pixels:
                result.existence[i], result.confidence[i], result.masks[i] = False, 0.0, np.zeros(size, bool)
        queries = [(i, m) for i, m in queries if i not in result.existence]
        if not queries:
            return result
        prob, conf = self._network(src_small, np.stack([m for _, m in queries]), resize_rgb(tgt_rgb, tgt_net), size)
        props = self.proposer.propose(tgt_rgb) if self.proposer is not None else None
        full = np.stack([src_labels == i for i, _ in queries])  # (Q, H1, W1) at the source size
        src_colour = None  # (Q, D) colour descriptors of the queried objects
        if self.verify == "colour":
            src_colour = colour_descriptors(src_rgb, full)
        on_band = None  # (Q,) epipolar weight of each chosen mask
        maps = None if geometry is None else epipolar_maps(geometry, full, self.epipolar_sigma, self.depth_range)
        if props is not None and len(props) and self.select == "proposal":
            score = self._soft_iou(prob, props.masks)
            if src_colour is not None:
                colour = src_colour @ colour_descriptors(tgt_rgb, props.masks).T  # (Q, N) cosines
                score = score * np.clip(colour, 0, 1) ** 2
            if maps is not None:
                band = candidate_weights(maps, props.masks)
                score = score * band
            choice = self._assign(score)
            masks = props.masks[choice]
            agree = colour[np.arange(len(choice)), choice] if src_colour is not None else None
            on_band = band[np.arange(len(choice)), choice] if maps is not None else None
        else:
            if maps is not None:  # the network's map kept to the band
                band = map_to(maps, size)
                prob = prob * band
            masks = prob > self.threshold
            if props is not None and len(props):
                masks = np.stack([self._snap(m, props.masks) if m.any() else m for m in masks])
            if maps is not None:
                on_band = np.array([b[m].mean() if m.any() else 0.0 for b, m in zip(band, masks, strict=True)])
            agree = (src_colour * colour_descriptors(tgt_rgb, masks)).sum(1) if src_colour is not None else None
        if agree is not None:
            conf = conf * np.clip(agree, 0, 1)
        if on_band is not None:
            conf = conf * on_band
        threshold = self.threshold_for(geometry)
        priority = {}
        for (i, _), p, c, mask in zip(queries, prob, conf, masks, strict=True):
            result.masks[i] = mask.copy()
            result.confidence[i] = float(c)
            result.existence[i] = bool(c > threshold)
            priority[i] = float(c) * float(p[mask].mean()) if mask.any() else 0.0
        result.labels = compose(result.masks, priority, result.existence, size, dtype)
        return result

    def threshold_for(self, geometry: ViewGeometry | None) -> float:
        """The existence threshold of a match with ``geometry`` (None: images only; with or
        without the source camera's depth)."""
        if geometry is None:
            return self.existence_threshold
        return self.geometry_threshold if geometry.src_depth is None else self.depth_threshold

    def remember_predictions(self, on: bool = True) -> None:
        """Keep the network's outputs per input (images and query masks) while ``on``, for callers
        that match the same queries again with other geometry (``corr pcc score`` calibrates a
        threshold for images, poses and poses + depth): the network then runs once per query.
        Geometry only weights the proposals afterwards, so the answers are the same. Off: forgotten."""
        self._predictions = {} if on else None

    def _network(self, src: np.ndarray, queries: np.ndarray, tgt: np.ndarray,
                 size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_predict`, from the remembered outputs where :meth:`remember_predictions` is on."""
        if self._predictions is None:
            return self._predict(src, queries, tgt, size)
        key = array_key(src, queries, tgt, np.asarray(size))
        if key not in self._predictions:
            self._predictions[key] = self._predict(src, queries, tgt, size)
        return self._predictions[key]

    @torch.inference_mode()
    def _predict(self, src: np.ndarray, queries: np.ndarray, tgt: np.ndarray,
                 size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The network on images at its size: ``(Q, H, W)`` mask probabilities at ``size`` and
        ``(Q,)`` existence probabilities of the query masks ``(Q, h, w)``."""
        model = self.model
        src_t = image_tensor(src, self.device)
        tgt_t = image_tensor(tgt, self.device)
        src_feat, tgt_feat = model.encode(src_t), model.encode(tgt_t)
        probs, exist = [], []
        for start in range(0, len(queries), self.batch):
            chunk = queries[start : start + self.batch]
            k = len(chunk)
            masks = torch.from_numpy(chunk).to(self.device)[:, None].float()
            logits, ex = model.correspond_features(src_feat.expand(k, -1, -1, -1), masks,
                                                   tgt_feat.expand(k, -1, -1, -1), tgt_t.expand(k, -1, -1, -1),
                                                   src_t.expand(k, -1, -1, -1))
            probs.append(torch.sigmoid(F.interpolate(logits, size=size, mode="bilinear", align_corners=False))[:, 0])
            exist.append(torch.sigmoid(ex))
        return torch.cat(probs).cpu().numpy(), torch.cat(exist).cpu().numpy()

    def _snap(self, mask: np.ndarray, proposals: np.ndarray) -> np.ndarray:
        """The proposal of highest IoU with ``mask`` when it reaches ``snap_iou``, else ``mask``."""
        flat = proposals.reshape(len(proposals), -1)
        m = mask.reshape(-1)
        inter = (flat & m).sum(1)
        union = flat.sum(1) + m.sum() - inter
        iou = inter / np.maximum(union, 1)
        best = int(np.argmax(iou))
        return proposals[best].copy() if iou[best] >= self.snap_iou else mask

    @staticmethod
    def _soft_iou(prob: np.ndarray, proposals: np.ndarray) -> np.ndarray:
        """``(Q, N)`` soft IoU of the probability maps ``prob`` ``(Q, H, W)`` in [0, 1] with the
        proposals ``(N, H, W)`` bool."""
        flat = proposals.reshape(len(proposals), -1).astype(np.float32)
        p = prob.reshape(len(prob), -1).astype(np.float32)
        inter = p @ flat.T
        return inter / np.maximum(flat.sum(1)[None] + p.sum(1)[:, None] - inter, 1e-6)

    def _assign(self, score: np.ndarray) -> np.ndarray:
        """A proposal index per query: the best one, or with ``one_to_one`` an assignment maximising
        the summed score (queries left over when proposals run out take their best one)."""
        choice = score.argmax(1)
        if self.one_to_one and len(score) > 1:
            rows, cols = linear_sum_assignment(score, maximize=True)
            choice[rows] = cols
        return choice
