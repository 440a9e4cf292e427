"""The matcher protocol and its result, and the input checks every matcher shares."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from corr_core.errors import DataError, ShapeMismatchError

if TYPE_CHECKING:
    from corr_core.geometry import ViewGeometry


@dataclass
class MatchResult:
    """What a matcher found in the target view.

    Attributes:
        labels: ``(H, W)`` target label map (dtype of the source labels, at least uint16) with the
            source ids of the objects predicted visible (0 elsewhere); overlaps go to the more
            confident object.
        existence: id -> whether the object is predicted visible in the target.
        confidence: id -> probability in [0, 1] that it is.
        masks: id -> ``(H, W)`` bool predicted mask, also for objects predicted absent (the
            EgoExo4D metrics score masks whatever the confidence); empty when none.
    """

    labels: np.ndarray
    existence: dict[int, bool] = field(default_factory=dict)
    confidence: dict[int, float] = field(default_factory=dict)
    masks: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def found(self) -> list[int]:
        """Ids predicted visible, ascending."""
        return sorted(i for i, e in self.existence.items() if e)


class Matcher(Protocol):
    """Finds the objects of a labelled source view in a target view."""

    def match(self, src_rgb: np.ndarray, src_labels: np.ndarray, tgt_rgb: np.ndarray,
              geometry: ViewGeometry | None = None) -> MatchResult:
        """``(H1, W1, 3) uint8``, ``(H1, W1)`` ids (0 = background), ``(H2, W2, 3) uint8`` -> result.

        ``geometry``: the two calibrated cameras when known (intrinsics and poses at this instant);
        matchers then keep to the query's epipolar band (:mod:`corr_core.geometry`). Every
        matcher takes it (callers pass it, None included); one without use for it ignores it.
        """
        ...


def array_key(*arrays: np.ndarray) -> str:
    """A digest of arrays' shapes and bytes: the key of a remembered answer to the same inputs."""
    h = hashlib.sha1()
    for a in arrays:
        h.update(str(np.shape(a)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def fit_geometry(geometry: object, src_rgb: np.ndarray, tgt_rgb: np.ndarray) -> ViewGeometry | None:
    """``geometry`` with its intrinsics rescaled to the images' sizes, or None.

    Raises:
        DataError: something else than a :class:`~corr_core.geometry.ViewGeometry`.
    """
    from corr_core.geometry import ViewGeometry

    if geometry is None:
        return None
    if not isinstance(geometry, ViewGeometry):
        raise DataError(f"cross-view match: geometry must be a ViewGeometry (two CameraPose), got {type(geometry).__name__}")
    depth = geometry.src_depth
    if depth is not None and depth.shape != src_rgb.shape[:2]:
        raise ShapeMismatchError(f"cross-view match: source depth {depth.shape[1]}x{depth.shape[0]} does not match the "
                                 f"source image {src_rgb.shape[1]}x{src_rgb.shape[0]}")
    return ViewGeometry(geometry.src.at(src_rgb.shape[:2]), geometry.tgt.at(tgt_rgb.shape[:2]), depth,
                        geometry.depth_tolerance)


def check_inputs(src_rgb: object, src_labels: object, tgt_rgb: object) -> list[int]:
    """Validates a match request; returns the source ids (ascending, 0 excluded).

    The two views may have different sizes (different cameras); the source labels must have the
    source image's size.

    Raises:
        ShapeMismatchError: an image that is not ``(H, W, 3)``, or labels of another size than the
            source image. DataError: non-uint8 images, non-integer or negative labels.
    """
    for name, img in (("source image", src_rgb), ("target image", tgt_rgb)):
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            raise ShapeMismatchError(f"cross-view match: {name} must be (H, W, 3) RGB, got {getattr(img, 'shape', type(img))}")
        if img.dtype != np.uint8:
            raise DataError(f"cross-view match: {name} must be uint8 RGB, got {img.dtype}")
        if img.shape[0] < 16 or img.shape[1] < 16:
            raise ShapeMismatchError(f"cross-view match: {name} {img.shape[1]}x{img.shape[0]} is too small (>= 16x16)")
    if not isinstance(src_labels, np.ndarray) or src_labels.ndim != 2:
        raise ShapeMismatchError(f"cross-view match: source labels must be (H, W), got {getattr(src_labels, 'shape', type(src_labels))}")
    if src_labels.shape != src_rgb.shape[:2]:
        raise ShapeMismatchError(
            f"cross-view match: source labels {src_labels.shape[1]}x{src_labels.shape[0]} do not match the source "
            f"image {src_rgb.shape[1]}x{src_rgb.shape[0]}"
        )
    if src_labels.dtype == np.bool_:
        src_labels = src_labels.astype(np.uint8)
    if not np.issubdtype(src_labels.dtype, np.integer):
        raise DataError(f"cross-view match: source labels must hold integer ids, got {src_labels.dtype}")
    ids = np.unique(src_labels)
    if len(ids) and ids[0] < 0:
        raise DataError(f"cross-view match: ids must be >= 0, got {int(ids[0])}")
    return [int(i) for i in ids if i != 0]


def output_dtype(src_labels: np.ndarray) -> np.dtype:
    """The label map dtype of a result: the source's, at least uint16 (mono16 on ROS)."""
    if src_labels.dtype == np.bool_:
        return np.dtype(np.uint16)
    return np.promote_types(src_labels.dtype, np.uint16)


def network_size(h: int, w: int, max_side: int, multiple: int = 16) -> tuple[int, int]:
    """``(H', W')`` with the longer side near ``max_side`` and both multiples of ``multiple``."""
    scale = max_side / max(h, w)
    return (max(multiple, int(round(h * scale / multiple)) * multiple),
            max(multiple, int(round(w * scale / multiple)) * multiple))


def resize_rgb(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` at ``(H, W)`` (area when shrinking, bilinear when enlarging)."""
    if img.shape[:2] == size:
        return img
    shrink = size[0] < img.shape[0]
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool mask at ``(H, W)`` (nearest)."""
    if mask.shape == size:
        return mask
    return cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def compose(masks: dict[int, np.ndarray], priority: dict[int, float], keep: dict[int, bool],
            size: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """A label map of the kept masks; where they overlap the higher ``priority`` wins."""
    out = np.zeros(size, dtype)
    for i in sorted((i for i in masks if keep.get(i)), key=lambda i: priority.get(i, 0.0)):
        out[masks[i]] = i
    return out
