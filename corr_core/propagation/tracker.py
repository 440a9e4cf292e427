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
fine-grained model fused by :class:`~corr_core.propagation.fusion.FusedFeatures` with
``cfg.fusion_lambda``.

Memory is bounded and allocated once per annotation: two
:class:`~corr_core.propagation.memory.FrameMemory` of ``cfg.long_term_size`` and ``cfg.context``
slots (features laid out for the windowed search, soft labels). A new frame is written into its
slot once (it is the only layout work of a step); nothing grows with the length of the stream.
``context`` and ``long_term_size`` are read when masks are given; the other settings (top-k,
radii, temperature, ...) may change between steps.

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
channel but are no longer predicted).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from corr_core.errors import CorrError, DataError, ShapeMismatchError
from corr_core.propagation.crw import (
    PropagationConfig,
    downsample_labels,
    propagate_memories,
    upsample_labels,
)
from corr_core.propagation.fusion import FusedFeatures
from corr_core.propagation.memory import FrameMemory

_CHANNEL_CHUNK = 16  # channels resized at a time when decoding (bounds full-resolution buffers)


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
    """

    def __init__(
        self,
        model: torch.nn.Module | None,
        cfg: PropagationConfig | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.cfg = PropagationConfig() if cfg is None else cfg
        self.cfg.validate()
        self.device = torch.device(device)
        self.model = None if model is None else model.to(self.device).eval()
        self._store_dtype = self.cfg.torch_dtype or torch.float32
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

        The two models are wrapped in one :class:`~corr_core.propagation.fusion.FusedFeatures`
        (the tracker's ``model``, exportable as one graph) with ``lambda = cfg.fusion_lambda``
        (kept in sync with ``cfg`` at every step). ``cfg.feature_stride`` must be the stride of the
        finer of the two maps. SFC's DAVIS settings (Table 0.A.2):
        ``PropagationConfig(fusion_lambda=1.75, topk=15, context=20, radius=15)``.
        """
        cfg = PropagationConfig() if cfg is None else cfg
        return cls(FusedFeatures(semantic, fine_grained, cfg.fusion_lambda), cfg, device)

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forgets everything (reference, memory, ids, sizes); the next call needs masks again."""
        self._ids: np.ndarray | None = None  # sorted channel ids, int64; 0 (background) included
        self._out_dtype: np.dtype | None = None
        self._image_size: tuple[int, int] | None = None
        self._feat_size: tuple[int, int] | None = None
        self._long: FrameMemory | None = None  # slot 0: the annotated frame
        self._long_frames: list[int] = []  # stream index of the frame in each long-term slot
        self._short: FrameMemory | None = None  # ring buffer of the last cfg.context frames
        self._short_frames: list[int] = []
        self._short_next = 0  # slot the next short-term frame overwrites once the ring is full
        self._anchor_frame = 0
        self._num_frames = 0
        self._soft: torch.Tensor | None = None

    @property
    def object_ids(self) -> tuple[int, ...]:
        """Ids of the tracked objects (background 0 excluded), ascending."""
        if self._ids is None:
            return ()
        return tuple(int(i) for i in self._ids if i != 0)

    @property
    def label_ids(self) -> tuple[int, ...]:
        """Id of each soft-label channel, background 0 first."""
        return () if self._ids is None else tuple(int(i) for i in self._ids)

    @property
    def num_frames(self) -> int:
        """Frames processed since the last :meth:`reset`."""
        return self._num_frames

    @property
    def memory_frames(self) -> int:
        """Frames held in memory: long-term (the reference, ...) + short-term (<= ``cfg.context``)."""
        return sum(mem.count for mem in (self._long, self._short) if mem is not None)

    @property
    def long_term_frames(self) -> tuple[int, ...]:
        """Stream indices (0 = first frame since :meth:`reset`) of the long-term frames, ascending."""
        return tuple(sorted(self._long_frames))

    @property
    def short_term_frames(self) -> tuple[int, ...]:
        """Stream indices of the short-term frames, ascending (padding repeats the annotated one)."""
        return tuple(sorted(self._short_frames))

    @property
    def memory_bytes(self) -> int:
        """Bytes allocated for the held frames (features and soft labels, all slots)."""
        return sum(mem.nbytes for mem in (self._long, self._short) if mem is not None)

    @property
    def soft_labels(self) -> torch.Tensor | None:
        """``(K, h, w)`` soft labels of the last frame at feature resolution (channels: label_ids)."""
        return self._soft

    # ------------------------------------------------------------------ public steps

    @torch.inference_mode()
    def step(self, frame: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """Processes one frame.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB.
            masks: ``(H, W)`` integer (or bool) label map, 0 = background. Required on the first
                call (and after :meth:`reset`); given later, it re-anchors the tracker.

        Returns:
            ``(H, W)`` label map with the ids of the given masks, in the dtype of the first masks
            (``uint16`` when they were bool). Where masks are given they are returned as they are.

        Raises:
            CorrError: first call without masks, or no model.
            DataError: wrong frame dtype, or mask ids that are negative / do not fit the dtype.
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
        return self._step(feat, masks, size)

    @torch.inference_mode()
    def step_features(
        self,
        feat: torch.Tensor,
        masks: np.ndarray | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """Processes one frame given its features (e.g. one item of a batch computed on the GPU).

        Args:
            feat: ``(C, h, w)`` or ``(1, C, h, w)`` features (L2-normalised here).
            masks: as in :meth:`step`.
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
                stride = self.cfg.feature_stride
                image_size = (int(feat.shape[1]) * stride, int(feat.shape[2]) * stride)
        size = (int(image_size[0]), int(image_size[1]))
        self._check_image_size(size)
        masks = self._prepare_masks(masks, size)
        feat = F.normalize(feat.to(self.device, torch.float32), dim=0).to(self._store_dtype)
        return self._step(feat, masks, size)

    # ------------------------------------------------------------------ internals

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
        self._set_reference(feat.to(self._store_dtype), lab)
        self._feat_size = (int(feat.shape[1]), int(feat.shape[2]))
        self._num_frames = 1
        return lab

    @torch.inference_mode()
    def step_soft(self, feat: torch.Tensor) -> torch.Tensor:
        """Propagates the soft maps of :meth:`start_soft` to a frame: ``(K, h, w)`` float32."""
        if self._long is None or self._feat_size is None:
            raise CorrError("Tracker.step_soft: call start_soft(features, labels) first")
        if (int(feat.shape[1]), int(feat.shape[2])) != self._feat_size:
            raise ShapeMismatchError(
                f"Tracker: feature map size changed from {self._feat_size} to {tuple(feat.shape[1:])}"
            )
        soft = self._propagate(feat.to(self._store_dtype))
        self._num_frames += 1
        return soft

    def _check_image_size(self, size: tuple[int, int]) -> None:
        if self._image_size is not None and size != self._image_size:
            raise ShapeMismatchError(
                f"Tracker: frame size changed from {self._image_size[0]}x{self._image_size[1]} to "
                f"{size[0]}x{size[1]} (HxW); call reset() before changing the stream's size"
            )

    def _prepare_masks(self, masks: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
        """Validates masks (bool becomes uint16); None is only allowed once the tracker is anchored."""
        if masks is None:
            if self._long is None:
                raise CorrError(
                    "Tracker.step: the first frame (and the first after reset()) needs masks, an (H, W) "
                    "integer label map with 0 = background; got masks=None"
                )
            return None
        if not isinstance(masks, np.ndarray) or masks.ndim != 2:
            shape = getattr(masks, "shape", type(masks).__name__)
            raise ShapeMismatchError(f"Tracker: masks must be an (H, W) integer array, got {shape}")
        if (int(masks.shape[0]), int(masks.shape[1])) != size:
            raise ShapeMismatchError(
                f"Tracker: masks are {masks.shape[0]}x{masks.shape[1]} but the frame is "
                f"{size[0]}x{size[1]} (HxW)"
            )
        if masks.dtype == np.bool_:
            masks = masks.astype(np.uint16)
        if not np.issubdtype(masks.dtype, np.integer):
            raise DataError(f"Tracker: masks must hold integer ids, got dtype {masks.dtype}")
        low, high = int(masks.min()), int(masks.max())
        if low < 0:
            raise DataError(f"Tracker: mask ids must be >= 0, got {low}")
        out_dtype = masks.dtype if self._out_dtype is None else self._out_dtype
        if high > np.iinfo(out_dtype).max:
            raise DataError(
                f"Tracker: mask id {high} does not fit the output dtype {np.dtype(out_dtype)} "
                "fixed by the first masks; call reset() to start over"
            )
        return masks

    def network_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """``(H, W)`` the network sees for frames of ``size``: scaled by ``cfg.input_scale``."""
        scale = float(self.cfg.input_scale)
        return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))

    def _encode(self, frame: np.ndarray) -> torch.Tensor:
        """Model features of one frame, L2-normalised over channels: ``(C, h, w)``."""
        x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device)
        x = x.permute(2, 0, 1)[None].float().div_(255.0)
        net_size = self.network_size((int(frame.shape[0]), int(frame.shape[1])))
        if net_size != tuple(x.shape[-2:]):
            shrink = net_size[0] < x.shape[-2]
            x = F.interpolate(x, size=net_size, mode="bilinear", align_corners=False, antialias=shrink)
        if isinstance(self.model, FusedFeatures):
            self.model.set_lambda(self.cfg.fusion_lambda)
        out = self.model(x)
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != 1:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ShapeMismatchError(f"Tracker: the model must return (1, C, h, w) features, got {shape}")
        h, w = out.shape[-2:]
        stride = self.cfg.feature_stride
        for name, cells, pixels in (("height", h, net_size[0]), ("width", w, net_size[1])):
            if not pixels // stride <= cells <= -(-pixels // stride):
                raise ShapeMismatchError(
                    f"Tracker: model output {name} {cells} does not match the network input {name} "
                    f"{pixels} at feature_stride {stride} (expected {pixels // stride} or "
                    f"{-(-pixels // stride)})"
                )
        return F.normalize(out[0].float(), dim=0).to(self._store_dtype)

    def _step(self, feat: torch.Tensor, masks: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        feat_size = (int(feat.shape[1]), int(feat.shape[2]))
        if self._feat_size is not None and feat_size != self._feat_size:
            raise ShapeMismatchError(
                f"Tracker: feature map size changed from {self._feat_size[0]}x{self._feat_size[1]} to "
                f"{feat_size[0]}x{feat_size[1]}; call reset() before changing the stream's size"
            )
        out = self._anchor(feat, masks) if masks is not None else self._decode(self._propagate(feat), size)
        self._feat_size = feat_size
        self._image_size = size
        self._num_frames += 1
        return out

    def _anchor(self, feat: torch.Tensor, masks: np.ndarray) -> np.ndarray:
        """Makes (feat, masks) the reference; returns the masks in the output dtype.

        ``masks`` went through :meth:`_prepare_masks`.
        """
        present = np.unique(masks).astype(np.int64)
        out_dtype = masks.dtype if self._out_dtype is None else self._out_dtype
        known = np.zeros(1, np.int64) if self._ids is None else self._ids
        ids = np.union1d(np.union1d(known, present), np.zeros(1, np.int64))
        channel = torch.from_numpy(np.searchsorted(ids, masks.astype(np.int64))).to(self.device)
        grid = (int(feat.shape[1]), int(feat.shape[2]))
        labels = self._onehot_at(channel, len(ids), grid)
        self._ids, self._out_dtype = ids, np.dtype(out_dtype)
        self._set_reference(feat, labels)
        return masks.astype(self._out_dtype, copy=True)

    def _set_reference(self, feat: torch.Tensor, labels: torch.Tensor) -> None:
        """Makes ``(feat, labels)`` the annotated frame: fresh long-term and short-term memories."""
        frame = self._num_frames
        self._anchor_frame = frame
        k = int(labels.shape[0])
        self._long = self._new_memory(self._long, self.cfg.long_term_size, feat, k)
        self._long.write(0, feat, labels)
        self._long_frames = [frame]
        self._short, self._short_frames, self._short_next = None, [], 0
        if self.cfg.context > 0:
            self._short = self._new_memory(self._short, self.cfg.context, feat, k)
            if self.cfg.pad_context:
                for slot in range(self.cfg.context):
                    self._short.write(slot, feat, labels)
                self._short_frames = [frame] * self.cfg.context
        self._soft = labels

    def _propagate(self, feat: torch.Tensor) -> torch.Tensor:
        """Soft labels of a new frame from the memories; the frame is then remembered."""
        soft = propagate_memories(feat, self._long, self._short, self.cfg).float()
        self._remember(feat, soft)
        self._soft = soft
        return soft

    def _new_memory(
        self, old: FrameMemory | None, capacity: int, feat: torch.Tensor, num_labels: int
    ) -> FrameMemory:
        """An empty memory for frames like ``feat``, reusing ``old``'s buffers when they fit."""
        c, h, w = (int(d) for d in feat.shape)
        if (
            old is not None
            and old.capacity == capacity
            and old.channels == c
            and old.size == (h, w)
            and old.keys.dtype == feat.dtype
            and old.labels.shape[1] == num_labels
        ):
            old.count = 0
            return old
        return FrameMemory(capacity, c, (h, w), num_labels, dtype=feat.dtype, device=feat.device)

    def _remember(self, feat: torch.Tensor, soft: torch.Tensor) -> None:
        """Stores a predicted frame in the short-term ring and, every N-th frame, the long-term set."""
        frame = self._num_frames
        short = self._short
        if short is not None:
            if short.count < short.capacity:
                slot = short.count
                self._short_frames.append(frame)
            else:
                slot = self._short_next
                self._short_frames[slot] = frame
                self._short_next = (slot + 1) % short.capacity
            short.write(slot, feat, soft)
        every, long = self.cfg.long_term_every, self._long
        if every > 0 and long.capacity > 1 and (frame - self._anchor_frame) % every == 0:
            if long.count < long.capacity:
                slot = long.count
                self._long_frames.append(frame)
            else:  # the oldest frame other than the annotated one (slot 0) makes room
                slot = 1 + int(np.argmin(self._long_frames[1:]))
                self._long_frames[slot] = frame
            long.write(slot, feat, soft)

    def _grid_pixels(self, grid: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
        """Pixel extent the feature grid stands for: the frame (stretch) or ``grid * stride``."""
        if self.cfg.label_resize == "stretch":
            return size
        cell = self.cfg.feature_stride / float(self.cfg.input_scale)  # frame pixels per cell
        return round(grid[0] * cell), round(grid[1] * cell)

    @staticmethod
    def _fit(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Crops ``(K, H, W)`` maps to ``size`` or pads them by repeating the last row/column."""
        maps = maps[:, : size[0], : size[1]]
        pad_h, pad_w = size[0] - maps.shape[1], size[1] - maps.shape[2]
        if pad_h or pad_w:
            maps = F.pad(maps[None], (0, pad_w, 0, pad_h), mode="replicate")[0]
        return maps

    def _onehot_at(self, channel: torch.Tensor, k: int, grid: tuple[int, int]) -> torch.Tensor:
        """``(K, h, w)`` float32 one-hot maps of an ``(H, W)`` channel-index map at feature resolution."""
        extent = self._grid_pixels(grid, (int(channel.shape[0]), int(channel.shape[1])))
        out = []
        for start in range(0, k, _CHANNEL_CHUNK):
            ks = torch.arange(start, min(start + _CHANNEL_CHUNK, k), device=channel.device)
            onehot = self._fit((channel[None] == ks[:, None, None]).float(), extent)
            out.append(downsample_labels(onehot, grid))
        return torch.cat(out)

    def _decode(self, soft: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """Upsamples soft labels to ``size`` and arg-maxes them into ids (channel chunks at a time).

        A running maximum over the channels (strictly greater replaces: the first maximum wins on
        ties, as numpy's argmax), several times faster on CPU than ``argmax`` over dim 0.
        """
        best_val = best_idx = None
        extent = self._grid_pixels((int(soft.shape[1]), int(soft.shape[2])), size)
        for start in range(0, soft.shape[0], _CHANNEL_CHUNK):
            up = self._fit(upsample_labels(soft[start : start + _CHANNEL_CHUNK], extent), size)
            for offset in range(up.shape[0]):
                val = up[offset]
                if best_val is None:
                    best_val = val.clone()
                    best_idx = torch.zeros(val.shape, dtype=torch.int64, device=val.device)
                    continue
                better = val > best_val
                best_val = torch.maximum(best_val, val)
                best_idx.masked_fill_(better, start + offset)
        ids = self._ids[best_idx.cpu().numpy()]
        return ids.astype(self._out_dtype)
