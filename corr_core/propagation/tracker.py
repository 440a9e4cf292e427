"""Streaming label propagation: ``Tracker.step(frame, masks=None) -> labels`` with bounded memory.

The tracker runs the CRW protocol (:mod:`corr_core.propagation.crw`) online, one frame at a time:

* the first call gives masks; they become the *reference*: its features and its per-id one-hot
  maps resized to feature resolution (bilinear, as CRW) are kept for the whole stream;
* every later frame is matched against the reference plus the last ``cfg.context`` frames, whose
  labels are the *soft* labels predicted for them (fed back, as CRW does); the result is resized
  bilinearly to frame size and arg-maxed into the original integer ids;
* with ``cfg.pad_context`` (default, as CRW's data loader) the short-term memory starts as
  ``cfg.context`` copies of the reference frame.

Long-term memory (MER, MAST): with ``cfg.long_term_every = N > 0`` the reference set (long-term
memory) also takes every N-th frame after the annotated one, with its predicted soft labels, up to
``cfg.long_term_size`` frames (the annotated frame always stays; the oldest other one makes room);
it is matched within ``cfg.long_term_radius`` (whole image by default), the short-term set (the
last ``cfg.context`` frames) within ``cfg.radius``. The defaults (N = 0, L = 1) are CRW's.

Feature fusion (SFC eq. 7): :meth:`Tracker.from_models` builds a tracker on a semantic and a
fine-grained model fused by :class:`~corr_core.models.fusion.FusedFeatures` with
``cfg.fusion_lambda``.

As Cutie's ``InferenceCore``, the tracker delegates: the memory manager
(:class:`~corr_core.propagation.context.ContextMemory`: two
:class:`~corr_core.propagation.memory.FrameMemory` of ``cfg.long_term_size`` and ``cfg.context``
slots, allocated once per annotation) and the object manager
(:class:`~corr_core.propagation.objects.ObjectManager`: ids, output dtype, label maps between
frame and grid). A new frame is written into its slot once (the only layout work of a step);
nothing grows with the length of the stream. Settings change through :meth:`Tracker.update_config`:
top-k, radii, temperature, ... apply from the next frame; ``context``, ``long_term_size`` and
``pad_context`` when masks are next given; settings that change the features (``input_scale``,
``feature_stride``, ``dtype``, ``label_resize``) only while no stream is anchored.

Frame sizes that are not multiples of ``cfg.feature_stride``: the model runs on the frame as it is
(no padding is added; a padded stride-8 network gives ``ceil(H/8) x ceil(W/8)`` cells) and its grid
must be ``floor`` or ``ceil`` of ``H / feature_stride`` (same for W), which catches a wrong stride
early. Labels go between frame and grid as ``cfg.label_resize`` says: ``"stretch"`` (default, CRW)
resizes the whole frame onto the grid and back, which misplaces labels by up to half a stride
towards the bottom/right edge for such sizes (under 2 px on 854-wide DAVIS); ``"grid"`` treats cell
``i`` as pixels ``[s*i, s*(i+1))`` (edge-pad or crop to ``grid * s`` pixels around the resize),
which is exact for padded convolutional backbones. Both agree when the size is a multiple of the
stride.

Masks given again later *re-anchor* the tracker: that frame and its masks become the new reference,
the long- and short-term memories restart from it (old predictions that contradict the new masks
are dropped), and ids not seen before are added (ids that are absent from the new masks keep their
channel but are no longer predicted). With ``merge=True`` the given masks add or correct only their
own objects (a cross-view retry that found a missing object): the frame is tracked first, the given
ids replace their tracked pixels where no other tracked object holds them, and that merged map
re-anchors the tracker, so the objects it tracks well keep their masks
(:func:`~corr_core.propagation.objects.merge_labels`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from corr_core.errors import ConfigError, CorrError, DataError, ShapeMismatchError
from corr_core.models.fusion import FusedFeatures
from corr_core.propagation.config import PropagationConfig
from corr_core.propagation.context import ContextMemory
from corr_core.propagation.objects import ObjectManager, merge_labels

#: Settings that shape the memories: read when masks are next given.
MEMORY_SETTINGS = ("context", "long_term_size", "pad_context")
#: Settings that change the features or the grid: only while no stream is anchored.
STREAM_SETTINGS = ("input_scale", "feature_stride", "dtype", "label_resize")


class Tracker:
    """Propagates per-object masks through a video stream (CRW protocol, bounded memory).

    Args:
        model: maps float RGB in [0, 1], ``(B, 3, H, W)``, to ``(B, C, H/stride, W/stride)``
            features (normalisation inside the model). ``None`` for a tracker used only through
            :meth:`step_features` (see :meth:`from_features`). It is moved to ``device`` and put
            in eval mode.
        cfg: propagation hyper-parameters (``None``: defaults).
        device: where features, labels and the propagation live.

    Example:
        >>> tracker = Tracker(model, PropagationConfig(), device="cuda")  # doctest: +SKIP
        >>> labels0 = tracker.step(frame0, masks0)  # doctest: +SKIP
        >>> labels1 = tracker.step(frame1)  # doctest: +SKIP
        >>> tracker.update_config(topk=5, radius=8)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: torch.nn.Module | None,
        cfg: PropagationConfig | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self._cfg = PropagationConfig() if cfg is None else cfg
        self._cfg.validate()
        self.device = torch.device(device)
        self.model = None if model is None else model.to(self.device).eval()
        self.memory = ContextMemory()
        self.objects = ObjectManager()
        self.reset()

    @classmethod
    def from_features(
        cls, cfg: PropagationConfig | None = None, device: str | torch.device = "cpu"
    ) -> Tracker:
        """A tracker without a model, fed with precomputed features through :meth:`step_features`."""
        return cls(None, cfg, device)

    @classmethod
    def from_models(
        cls,
        semantic: torch.nn.Module,
        fine_grained: torch.nn.Module,
        cfg: PropagationConfig | None = None,
        device: str | torch.device = "cpu",
    ) -> Tracker:
        """A tracker on SFC's fused features (eq. 7) of a semantic and a fine-grained model.

        The two models are wrapped in one :class:`~corr_core.models.fusion.FusedFeatures`
        (the tracker's ``model``, exportable as one graph) with ``lambda = cfg.fusion_lambda``
        (kept in sync with ``cfg`` at every step). ``cfg.feature_stride`` must be the stride of the
        finer of the two maps. SFC's DAVIS settings (Table 0.A.2):
        ``PropagationConfig(fusion_lambda=1.75, topk=15, context=20, radius=15)``.
        """
        cfg = PropagationConfig() if cfg is None else cfg
        return cls(FusedFeatures(semantic, fine_grained, cfg.fusion_lambda), cfg, device)

    # ------------------------------------------------------------------ state

    @property
    def cfg(self) -> PropagationConfig:
        """The propagation settings in use (read-only: change them with :meth:`update_config`)."""
        return self._cfg

    def update_config(self, **changes: Any) -> PropagationConfig:
        """Changes propagation settings; returns the new config.

        Top-k, radii, temperature, long-term cadence, fusion weight and the search knobs apply from
        the next frame; ``context``, ``long_term_size`` and ``pad_context`` (they size the memory)
        when masks are next given; ``input_scale``, ``feature_stride``, ``dtype`` and
        ``label_resize`` change the features, so they are refused while a stream is anchored.

        Raises:
            ConfigError: an unknown field, an invalid value, or a stream setting while anchored
                (call :meth:`reset` first).
        """
        new = self._cfg.updated(**changes)
        blocked = [k for k in STREAM_SETTINGS if getattr(new, k) != getattr(self._cfg, k)]
        if blocked and self.memory.anchored:
            raise ConfigError(
                f"Tracker.update_config: {blocked} change the features of the stream; call reset() "
                "first (the next frame then needs masks)"
            )
        self._cfg = new
        if blocked:
            self._store_dtype = self._cfg.torch_dtype or torch.float32
        return new

    def reset(self) -> None:
        """Forgets everything (reference, memory, ids, sizes); the next call needs masks again."""
        self._store_dtype = self._cfg.torch_dtype or torch.float32
        self.memory.clear()
        self.objects = ObjectManager()
        self._image_size: tuple[int, int] | None = None
        self._feat_size: tuple[int, int] | None = None
        self._num_frames = 0
        self._soft: torch.Tensor | None = None

    @property
    def anchored(self) -> bool:
        """Whether the tracker holds an annotated frame (frames without masks can be tracked)."""
        return self.memory.anchored

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the stream's frames, fixed by its first frame (None before it)."""
        return self._image_size

    @property
    def object_ids(self) -> tuple[int, ...]:
        """Ids of the tracked objects (background 0 excluded), ascending."""
        return self.objects.object_ids

    @property
    def label_ids(self) -> tuple[int, ...]:
        """Id of each soft-label channel, background 0 first."""
        return self.objects.label_ids

    @property
    def num_frames(self) -> int:
        """Frames processed since the last :meth:`reset`."""
        return self._num_frames

    @property
    def memory_frames(self) -> int:
        """Frames held in memory: long-term (the reference, ...) + short-term (<= ``cfg.context``)."""
        return self.memory.frames

    @property
    def long_term_frames(self) -> tuple[int, ...]:
        """Stream indices (0 = first frame since :meth:`reset`) of the long-term frames, ascending."""
        return tuple(sorted(self.memory.long_frames))

    @property
    def short_term_frames(self) -> tuple[int, ...]:
        """Stream indices of the short-term frames, ascending (padding repeats the annotated one)."""
        return tuple(sorted(self.memory.short_frames))

    @property
    def memory_bytes(self) -> int:
        """Bytes allocated for the held frames (features and soft labels, all slots)."""
        return self.memory.nbytes

    @property
    def soft_labels(self) -> torch.Tensor | None:
        """``(K, h, w)`` soft labels of the last frame at feature resolution (channels: label_ids)."""
        return self._soft

    # ------------------------------------------------------------------ public steps

    @torch.inference_mode()
    def step(self, frame: np.ndarray, masks: np.ndarray | None = None, merge: bool = False) -> np.ndarray:
        """Processes one frame.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB.
            masks: ``(H, W)`` integer (or bool) label map, 0 = background. Required on the first
                call (and after :meth:`reset`); given later, it re-anchors the tracker.
            merge: with ``masks`` on an anchored tracker, they give only their own objects: the
                frame is tracked, the ids in ``masks`` take their given pixels where no other
                tracked object is, every other object keeps its tracked pixels, and the result
                re-anchors the tracker (it is returned). Masks that change nothing (no id, or
                every given pixel held by other objects) leave the tracker as a plain step does.

        Returns:
            ``(H, W)`` label map with the ids of the given masks, in the dtype of the masks
            (``uint16`` when they were bool; widened when later masks need a wider one). Where
            masks are given they are returned as they are.

        Raises:
            CorrError: first call without masks, or no model.
            DataError: wrong frame dtype, or negative / non-integer mask ids.
            ShapeMismatchError: the frame size differs from the stream's, masks do not match the
                frame, or the model's output does not match ``cfg.feature_stride``.
        """
        if self.model is None:
            raise CorrError("Tracker.step needs a model; this tracker was built for step_features() only")
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
            shape = getattr(frame, "shape", type(frame).__name__)
            raise ShapeMismatchError(f"Tracker.step: frame must be an (H, W, 3) RGB array, got {shape}")
        if frame.dtype != np.uint8:
            raise DataError(f"Tracker.step: frame must be uint8 RGB, got dtype {frame.dtype}")
        size = (int(frame.shape[0]), int(frame.shape[1]))
        self._check_image_size(size)
        masks = self._prepare_masks(masks, size)  # before running the model: fail fast
        feat = self._encode(frame)
        return self._step(feat, masks, size, merge)

    @torch.inference_mode()
    def step_features(
        self,
        feat: torch.Tensor,
        masks: np.ndarray | None = None,
        image_size: tuple[int, int] | None = None,
        merge: bool = False,
    ) -> np.ndarray:
        """Processes one frame given its features (e.g. one item of a batch computed on the GPU).

        Args:
            feat: ``(C, h, w)`` or ``(1, C, h, w)`` features (L2-normalised here).
            masks, merge: as in :meth:`step`.
            image_size: ``(H, W)`` of the output; defaults to the masks' size, else the size fixed
                by the first masks.

        Returns:
            ``(H, W)`` label map, as in :meth:`step`.
        """
        if feat.dim() == 4 and feat.shape[0] == 1:
            feat = feat[0]
        if feat.dim() != 3:
            raise ShapeMismatchError(f"step_features: feat must be (C, h, w), got {tuple(feat.shape)}")
        if image_size is None:
            if masks is not None and isinstance(masks, np.ndarray) and masks.ndim == 2:
                image_size = (int(masks.shape[0]), int(masks.shape[1]))
            elif self._image_size is not None:
                image_size = self._image_size
            else:
                stride = self._cfg.feature_stride
                image_size = (int(feat.shape[1]) * stride, int(feat.shape[2]) * stride)
        size = (int(image_size[0]), int(image_size[1]))
        self._check_image_size(size)
        masks = self._prepare_masks(masks, size)
        feat = F.normalize(feat.to(self.device, torch.float32), dim=0).to(self._store_dtype)
        return self._step(feat, masks, size, merge)

    @torch.inference_mode()
    def encode(self, frame: np.ndarray) -> torch.Tensor:
        """L2-normalised features ``(C, h, w)`` of one ``(H, W, 3) uint8`` RGB frame."""
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ShapeMismatchError(f"Tracker: frame must be an (H, W, 3) RGB array, got shape {frame.shape}")
        return self._encode(frame)

    @torch.inference_mode()
    def start_soft(self, feat: torch.Tensor, labels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Starts a stream from arbitrary soft label maps (keypoint heat maps, part maps, ...).

        Args:
            feat: ``(C, h, w)`` features from :meth:`encode`.
            labels: ``(K, h, w)`` float maps on the feature grid.

        Returns:
            The labels as ``float32`` on the tracker's device. Continue with :meth:`step_soft`.

        Raises:
            ShapeMismatchError: the maps' grid differs from the features'.
        """
        lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
        lab = lab.to(self.device, torch.float32)
        if lab.dim() != 3 or tuple(lab.shape[1:]) != tuple(feat.shape[1:]):
            raise ShapeMismatchError(
                f"Tracker: label maps {tuple(lab.shape)} do not fit the feature grid {tuple(feat.shape[1:])} "
                "(expected (K, h, w))"
            )
        self.reset()
        self.memory.anchor(feat.to(self._store_dtype), lab, 0, self._cfg)
        self._soft = lab
        self._feat_size = (int(feat.shape[1]), int(feat.shape[2]))
        self._num_frames = 1
        return lab

    @torch.inference_mode()
    def step_soft(self, feat: torch.Tensor) -> torch.Tensor:
        """Propagates the soft maps of :meth:`start_soft` to a frame: ``(K, h, w)`` float32."""
        if not self.memory.anchored or self._feat_size is None:
            raise CorrError("Tracker.step_soft: call start_soft(features, labels) first")
        if (int(feat.shape[1]), int(feat.shape[2])) != self._feat_size:
            raise ShapeMismatchError(
                f"Tracker: feature map size changed from {self._feat_size} to {tuple(feat.shape[1:])}"
            )
        soft = self._propagate(feat.to(self._store_dtype))
        self._num_frames += 1
        return soft

    def network_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """``(H, W)`` the network sees for frames of ``size``: scaled by ``cfg.input_scale``."""
        scale = float(self._cfg.input_scale)
        return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))

    # ------------------------------------------------------------------ internals

    def _check_image_size(self, size: tuple[int, int]) -> None:
        if self._image_size is not None and size != self._image_size:
            raise ShapeMismatchError(
                f"Tracker: frame size changed from {self._image_size[0]}x{self._image_size[1]} to "
                f"{size[0]}x{size[1]} (HxW); call reset() before changing the stream's size"
            )

    def _prepare_masks(self, masks: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
        """Validates masks; None is only allowed once the tracker is anchored."""
        if masks is None:
            if not self.memory.anchored:
                raise CorrError(
                    "Tracker.step: the first frame (and the first after reset()) needs masks, an (H, W) "
                    "integer label map with 0 = background; got masks=None"
                )
            return None
        return self.objects.validate(masks, size)

    def _encode(self, frame: np.ndarray) -> torch.Tensor:
        """Model features of one frame, L2-normalised over channels: ``(C, h, w)``."""
        x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device)
        x = x.permute(2, 0, 1)[None].float().div_(255.0)
        net_size = self.network_size((int(frame.shape[0]), int(frame.shape[1])))
        if net_size != tuple(x.shape[-2:]):
            shrink = net_size[0] < x.shape[-2]
            x = F.interpolate(x, size=net_size, mode="bilinear", align_corners=False, antialias=shrink)
        if isinstance(self.model, FusedFeatures):
            self.model.set_lambda(self._cfg.fusion_lambda)
        out = self.model(x)
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != 1:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ShapeMismatchError(f"Tracker: the model must return (1, C, h, w) features, got {shape}")
        h, w = out.shape[-2:]
        stride = self._cfg.feature_stride
        for name, cells, pixels in (("height", h, net_size[0]), ("width", w, net_size[1])):
            if not pixels // stride <= cells <= -(-pixels // stride):
                raise ShapeMismatchError(
                    f"Tracker: model output {name} {cells} does not match the network input {name} "
                    f"{pixels} at feature_stride {stride} (expected {pixels // stride} or "
                    f"{-(-pixels // stride)})"
                )
        return F.normalize(out[0].float(), dim=0).to(self._store_dtype)

    def _step(self, feat: torch.Tensor, masks: np.ndarray | None, size: tuple[int, int],
              merge: bool = False) -> np.ndarray:
        feat_size = (int(feat.shape[1]), int(feat.shape[2]))
        if self._feat_size is not None and feat_size != self._feat_size:
            raise ShapeMismatchError(
                f"Tracker: feature map size changed from {self._feat_size[0]}x{self._feat_size[1]} to "
                f"{feat_size[0]}x{feat_size[1]}; call reset() before changing the stream's size"
            )
        if masks is not None and merge and self.memory.anchored:
            tracked = self.objects.decode(self._propagate(feat), size, self._cfg)
            masks = merge_labels(tracked, masks)
            if masks is None:  # nothing to add: a plain step
                self._num_frames += 1
                return tracked
        if masks is not None:  # (re-)anchor: that frame and its masks become the reference
            labels = self.objects.anchor(masks, feat_size, self._cfg, self.device)
            self.memory.anchor(feat, labels, self._num_frames, self._cfg)
            self._soft = labels
            out = self.objects.cast(masks)
        else:
            out = self.objects.decode(self._propagate(feat), size, self._cfg)
        self._feat_size = feat_size
        self._image_size = size
        self._num_frames += 1
        return out

    def _propagate(self, feat: torch.Tensor) -> torch.Tensor:
        """Soft labels of a new frame from the memories; the frame is then remembered."""
        self._soft = self.memory.propagate(feat, self._num_frames, self._cfg)
        return self._soft
