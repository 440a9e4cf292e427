"""The frames of one synchronised set through the feature network in one batch.

``corr_node`` tracks N cameras with N :class:`~corr_core.propagation.tracker.Tracker` objects that
share one feature network. Run one camera at a time, the network sees N batches of one; here the
frames of a set that have the same size go through it together, and each tracker then continues
with :meth:`Tracker.step_features <corr_core.propagation.tracker.Tracker.step_features>`.

:class:`BatchEncoder` does what ``Tracker.step`` does before propagation, for a batch: ``uint8``
RGB -> float in [0, 1] (divided by 255, as the tracker does), resized by ``cfg.input_scale``, the
network, and the check of the feature grid against ``cfg.feature_stride``. The input tensor of a
batch shape is allocated once and reused (frames are copied into it, converting on the copy); only
a change of batch shape allocates a new one.

:class:`SetFeatures` is the per-set view the processor uses: the first request encodes every
candidate camera of the set at once (grouped by frame size), later requests return the stored
features, and a camera outside the batch (or a batch that failed) is encoded on its own, so an
error is charged to the camera whose frame caused it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from corr_core.errors import DataError, ShapeMismatchError

__all__ = ["BatchEncoder", "SetFeatures"]


def _shared_model(trackers: Iterable[Any]) -> Any:
    models = []
    for tracker in trackers:
        model = getattr(tracker, "model", None)
        if model is None or not callable(getattr(tracker, "step_features", None)) \
                or not callable(getattr(tracker, "network_size", None)):
            return None
        models.append(model)
    if not models or any(m is not models[0] for m in models):
        return None
    return models[0]


class BatchEncoder:
    """Runs the network shared by several trackers on a batch of their frames.

    Args:
        model: the feature network, ``(B, 3, H, W)`` float RGB in [0, 1] -> ``(B, C, h, w)``.
        device: where the input tensor is built (the model's device).
    """

    def __init__(self, model: Any, device: str | torch.device) -> None:
        self.model = model
        self.device = torch.device(device)
        self._buffer: torch.Tensor | None = None
        self.batches = 0
        self.frames = 0

    @classmethod
    def for_trackers(cls, trackers: Mapping[str, Any]) -> BatchEncoder | None:
        """An encoder for ``trackers`` when they all share one network and can be fed features
        (real :class:`~corr_core.propagation.tracker.Tracker` objects), else None."""
        model = _shared_model(trackers.values())
        if model is None:
            return None
        first = next(iter(trackers.values()))
        return cls(model, getattr(first, "device", "cpu"))

    def _input(self, frames: list[np.ndarray]) -> torch.Tensor:
        """``(B, 3, H, W)`` float32 in [0, 1] in the reused buffer."""
        h, w = frames[0].shape[:2]
        shape = (len(frames), 3, int(h), int(w))
        if self._buffer is None or tuple(self._buffer.shape) != shape:
            self._buffer = torch.empty(shape, dtype=torch.float32, device=self.device)
        buf = self._buffer
        for i, frame in enumerate(frames):
            buf[i].copy_(torch.from_numpy(frame).permute(2, 0, 1))
        return buf.div_(255.0)

    @torch.inference_mode()
    def encode(self, frames: list[np.ndarray], tracker: Any) -> torch.Tensor:
        """Features of frames of one size: ``(B, C, h, w)`` as the network returns them.

        Args:
            frames: ``(H, W, 3)`` uint8 RGB frames, all of one size.
            tracker: a tracker of the shared network (its settings: ``input_scale``,
                ``feature_stride``, ``fusion_lambda``).

        Raises:
            DataError: a frame that is not uint8. ShapeMismatchError: frames of another shape than
                ``(H, W, 3)`` or of different sizes, or a grid that does not match ``feature_stride``.
        """
        if not frames:
            raise ShapeMismatchError("BatchEncoder.encode: no frames")
        size = frames[0].shape[:2]
        for frame in frames:
            if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
                raise ShapeMismatchError(f"BatchEncoder: a frame must be an (H, W, 3) RGB array, got "
                                         f"{getattr(frame, 'shape', type(frame).__name__)}")
            if frame.dtype != np.uint8:
                raise DataError(f"BatchEncoder: frames must be uint8 RGB, got dtype {frame.dtype}")
            if frame.shape[:2] != size:
                raise ShapeMismatchError(f"BatchEncoder: one batch needs frames of one size, got {size} and "
                                         f"{frame.shape[:2]}")
        x = self._input([np.ascontiguousarray(f) for f in frames])
        net_size = tracker.network_size((int(size[0]), int(size[1])))
        if net_size != tuple(x.shape[-2:]):
            shrink = net_size[0] < x.shape[-2]
            x = F.interpolate(x, size=net_size, mode="bilinear", align_corners=False, antialias=shrink)
        set_lambda = getattr(self.model, "set_lambda", None)
        if callable(set_lambda):
            set_lambda(tracker.cfg.fusion_lambda)
        out = self.model(x)
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != len(frames):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ShapeMismatchError(f"BatchEncoder: the model must return ({len(frames)}, C, h, w) features, "
                                     f"got {shape}")
        stride = tracker.cfg.feature_stride
        for name, cells, pixels in (("height", out.shape[-2], net_size[0]), ("width", out.shape[-1], net_size[1])):
            if not pixels // stride <= cells <= -(-pixels // stride):
                raise ShapeMismatchError(
                    f"BatchEncoder: model output {name} {cells} does not match the network input {name} "
                    f"{pixels} at feature_stride {stride} (expected {pixels // stride} or {-(-pixels // stride)})"
                )
        self.batches += 1
        self.frames += len(frames)
        return out


class SetFeatures:
    """The features of one synchronised set, computed in batches on first use.

    Args:
        encoder: the shared network's encoder.
        trackers: camera -> tracker.
        frames: camera -> ``(H, W, 3)`` uint8 RGB frame of this set.
        candidates: cameras likely to be stepped; they are encoded together on the first
            request (grouped by frame size). Others are encoded alone when asked for.
    """

    def __init__(self, encoder: BatchEncoder, trackers: Mapping[str, Any], frames: Mapping[str, np.ndarray],
                 candidates: Iterable[str]) -> None:
        self.encoder = encoder
        self.trackers = trackers
        self.frames = frames
        self.candidates = [c for c in candidates if c in frames]
        self._feats: dict[str, torch.Tensor] = {}
        self._batched = False

    def _encode_candidates(self) -> None:
        self._batched = True
        groups: dict[tuple[int, ...], list[str]] = {}
        for cam in self.candidates:
            groups.setdefault(tuple(self.frames[cam].shape), []).append(cam)
        for cams in groups.values():
            try:
                out = self.encoder.encode([self.frames[c] for c in cams], self.trackers[cams[0]])
            except Exception:  # each camera is then encoded alone: its own error goes to it
                continue
            for i, cam in enumerate(cams):
                self._feats[cam] = out[i]

    def get(self, cam: str) -> torch.Tensor:
        """``(C, h, w)`` features of ``cam``'s frame (raw network output; the tracker normalises)."""
        if not self._batched:
            self._encode_candidates()
        feat = self._feats.get(cam)
        if feat is None:
            feat = self.encoder.encode([self.frames[cam]], self.trackers[cam])[0]
            self._feats[cam] = feat
        return feat
