"""Dense optical flow with OpenCV's DIS (Kroeger et al., ECCV 2016), for MER's motion input.

MER (seed 002, Sec. 3.2) fuses each training frame with "the optical flow map with a specific flow
gap corresponding to the frame". :func:`frame_motion` gives that map: for every pixel of a frame,
its displacement to the frame ``gap`` frames earlier, on the frame's own pixel grid (so it lines
up with the frame it is fused with). :func:`normalise_flow` scales it for a network input.

Only OpenCV is used (no weights, no network); DIS is deterministic, so a resumed training run
sees the same flows.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from corr_core.errors import ConfigError, ShapeMismatchError

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

_local = threading.local()  # one DIS instance per thread and preset (they hold buffers)


def _dis(preset: str) -> cv2.DISOpticalFlow:
    if preset not in PRESETS:
        raise ConfigError(f"unknown DIS preset {preset!r}; known: {sorted(PRESETS)}")
    cache = getattr(_local, "dis", None)
    if cache is None:
        cache = _local.dis = {}
    if preset not in cache:
        cache[preset] = cv2.DISOpticalFlow_create(PRESETS[preset])
    return cache[preset]


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ShapeMismatchError(f"optical flow needs (H, W) or (H, W, 3) uint8 images, got {image.shape}")
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def frame_motion(frame: np.ndarray, earlier: np.ndarray, preset: str = "medium") -> np.ndarray:
    """The motion of every pixel of ``frame`` since ``earlier`` (DIS optical flow).

    Args:
        frame: ``(H, W, 3) uint8`` RGB (or ``(H, W)`` grey) frame the flow is aligned with.
        earlier: the frame ``gap`` frames before it, same size.
        preset: DIS preset: ``ultrafast``, ``fast`` or ``medium``.

    Returns:
        ``(H, W, 2) float32`` ``(dx, dy)`` in pixels: pixel ``(x, y)`` of ``frame`` was at
        ``(x + dx, y + dy)`` in ``earlier``; zero where nothing moved.

    Raises:
        ShapeMismatchError: the two frames differ in size or are not images.
        ConfigError: unknown preset.
    """
    a, b = _grey(frame), _grey(earlier)
    if a.shape != b.shape:
        raise ShapeMismatchError(f"optical flow between frames of different sizes: {a.shape} and {b.shape}")
    flow = _dis(preset).calc(a, b, None)
    return np.asarray(flow, dtype=np.float32)


def normalise_flow(flow: np.ndarray, scale: float) -> np.ndarray:
    """``(H, W, 2)`` flow in pixels -> ``(2, H, W) float32`` in [-1, 1]: ``clip(flow / scale)``.

    Args:
        flow: pixels of displacement, e.g. from :func:`frame_motion`.
        scale: the displacement (pixels) that maps to 1; larger motions saturate.

    Raises:
        ConfigError: ``scale`` not positive.
    """
    if not scale > 0:
        raise ConfigError(f"flow scale must be > 0 pixels, got {scale!r}")
    return np.clip(flow / float(scale), -1.0, 1.0).transpose(2, 0, 1).astype(np.float32)
