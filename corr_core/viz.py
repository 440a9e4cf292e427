"""Label-map visualisation: DAVIS-palette colouring and image overlays (used by eval and ROS)."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from corr_core.data.labels import davis_palette
from corr_core.errors import ShapeMismatchError

__all__ = ["colorize", "contours", "overlay", "palette"]


@lru_cache(maxsize=4)
def _palette(n: int) -> np.ndarray:
    pal = davis_palette(n)
    pal.setflags(write=False)
    return pal


def palette(n_ids: int) -> np.ndarray:
    """``(n, 3) uint8`` DAVIS colours for ids ``0..n_ids-1`` (at least 256 entries; id 0 black)."""
    n = 256
    while n < n_ids:
        n *= 2
    return _palette(n)


def _as_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ShapeMismatchError(f"label map must be 2-D (H, W), got shape {labels.shape}")
    if labels.dtype.kind not in "iub":
        raise ShapeMismatchError(f"label map must hold integer ids, got dtype {labels.dtype}")
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise ShapeMismatchError(f"label map holds negative ids (min {labels.min()})")
    return labels.astype(np.int64, copy=False) if labels.dtype.kind == "b" else labels


def colorize(labels: np.ndarray) -> np.ndarray:
    """Colours a label map with the DAVIS palette.

    Args:
        labels: ``(H, W)`` non-negative integer ids; 0 (background) is black.

    Returns:
        ``(H, W, 3) uint8`` RGB image.

    Raises:
        ShapeMismatchError: if ``labels`` is not a 2-D map of non-negative integers.
    """
    labels = _as_labels(labels)
    if labels.dtype == np.uint8 and labels.size:
        # one table look-up per channel (several times faster than fancy indexing)
        lut = _palette(256).reshape(256, 1, 3)
        return cv2.LUT(cv2.merge([labels, labels, labels]), lut)
    top = int(labels.max()) if labels.size else 0
    return palette(top + 1)[labels]


def contours(labels: np.ndarray) -> np.ndarray:
    """``(H, W) bool``: object pixels (id > 0) with a 4-neighbour of a different id.

    Pixels on the image border count as contour only if a neighbour inside the image differs.
    """
    labels = _as_labels(labels)
    edge = np.zeros(labels.shape, dtype=bool)
    diff_v = labels[1:, :] != labels[:-1, :]
    diff_h = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= diff_v
    edge[:-1, :] |= diff_v
    edge[:, 1:] |= diff_h
    edge[:, :-1] |= diff_h
    return edge & (labels > 0)


def overlay(
    image_rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5, contour: bool = True
) -> np.ndarray:
    """Blends object colours into an image and optionally outlines every object.

    Args:
        image_rgb: ``(H, W, 3) uint8`` RGB image.
        labels: ``(H, W)`` integer ids; 0 leaves the image untouched.
        alpha: weight of the object colour inside objects (0 = image only, 1 = colour only).
        contour: draw each object's outline in its full colour.

    Returns:
        ``(H, W, 3) uint8`` RGB image (a new array).

    Raises:
        ShapeMismatchError: if the image is not ``(H, W, 3)`` or the sizes differ.
        ValueError: if ``alpha`` is outside [0, 1].
    """
    image = np.asarray(image_rgb)
    labels = _as_labels(labels)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ShapeMismatchError(f"image must be (H, W, 3), got shape {image.shape}")
    if image.shape[:2] != labels.shape:
        raise ShapeMismatchError(f"image is {image.shape[:2]} but the label map is {labels.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = np.array(image, dtype=np.uint8, copy=True)
    fg = labels > 0
    if not fg.any():
        return out
    colours = colorize(labels)
    blended = cv2.addWeighted(out, 1.0 - alpha, colours, alpha, 0.0)
    out = cv2.copyTo(blended, fg.view(np.uint8), out)
    if contour:
        out = cv2.copyTo(colours, contours(labels).view(np.uint8), out)
    return out
