"""What every evaluation protocol needs from a tracker: one protocol, shared by VOS, VIP and JHMDB.

:class:`~corr_core.propagation.tracker.Tracker` satisfies both protocols below; tests and other
methods may pass anything with the same methods. The protocols are ``runtime_checkable``
(``isinstance`` checks that the methods exist, not their signatures).

* :class:`LabelTracker` -- hard labels: ``step(frame, masks=None) -> labels``. Used by
  :func:`~corr_core.evaluation.vos.run_vos` (DAVIS masks) and
  :func:`~corr_core.evaluation.vip.run_vip` (part ids), through a factory called once per video.
* :class:`SoftLabelTracker` -- a :class:`LabelTracker` that also propagates arbitrary soft maps on
  the feature grid (``encode``, ``start_soft``, ``step_soft``, ``reset``). Used by
  :func:`~corr_core.evaluation.jhmdb.run_jhmdb` (keypoint heat maps).

The EgoExo protocol (:func:`~corr_core.evaluation.egoexo.run_egoexo_pairs`) scores predicted
correspondences from a file and needs no tracker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from corr_core.errors import ShapeMismatchError

if TYPE_CHECKING:  # torch only for the annotations: importing this module stays light
    import torch

__all__ = ["LabelTracker", "SoftLabelTracker", "TrackerFactory", "checked_labels"]


@runtime_checkable
class LabelTracker(Protocol):
    """Tracks integer label maps through a video, one frame per call."""

    def step(self, frame: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """Tracks one frame.

        Args:
            frame: ``(H, W, 3) uint8`` RGB.
            masks: ``(H, W)`` integer ids (0 = background) on the first frame of a video (and
                whenever the reference is replaced); None for the frames to track.

        Returns:
            ``(H, W)`` integer ids of the frame.
        """
        ...


@runtime_checkable
class SoftLabelTracker(LabelTracker, Protocol):
    """A :class:`LabelTracker` that also propagates soft maps on its feature grid."""

    def reset(self) -> None:
        """Forgets the current video; the next frame starts a new one."""
        ...

    def encode(self, frame: np.ndarray) -> torch.Tensor:
        """``(C, h, w)`` features of an ``(H, W, 3) uint8`` RGB frame."""
        ...

    def start_soft(self, feat: torch.Tensor, labels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Starts a video from ``(K, h, w)`` float maps on the grid of ``feat``; returns them."""
        ...

    def step_soft(self, feat: torch.Tensor) -> torch.Tensor:
        """The ``(K, h, w)`` float maps propagated to the frame of ``feat``."""
        ...


#: Returns a fresh (or reset) tracker; protocols call it once per video.
TrackerFactory = Callable[[], LabelTracker]


def checked_labels(labels: Any, shape: tuple[int, int], where: str) -> np.ndarray:
    """A tracker's output as an ``(H, W)`` integer numpy array, or an error naming ``where``.

    Args:
        labels: what ``step`` returned (numpy array, or a torch tensor that slipped through).
        shape: the ``(H, W)`` the labels must have (the frame's).
        where: the video and frame, for the message (e.g. ``"sequence 'bear', frame 3"``).

    Raises:
        ShapeMismatchError: if the labels have another size or are not integers.
    """
    if hasattr(labels, "detach"):  # a torch tensor
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.shape != tuple(shape) or labels.dtype.kind not in "iub":
        raise ShapeMismatchError(
            f"{where}: tracker returned labels {labels.shape} {labels.dtype} for a frame of size "
            f"{tuple(shape)} (expected integer ids of that size)"
        )
    return labels
