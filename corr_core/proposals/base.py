"""The proposal set and the proposer protocol shared by every proposer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from corr_core.errors import DataError, ShapeMismatchError


@dataclass
class Proposals:
    """Object proposals of one image.

    Attributes:
        masks: ``(N, H, W)`` bool, one mask per proposal (they may overlap).
        scores: ``(N,)`` float32, higher is more object-like (proposer-specific scale).
    """

    masks: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.masks.ndim != 3 or self.masks.dtype != np.bool_:
            raise ShapeMismatchError(f"Proposals.masks must be (N, H, W) bool, got {self.masks.shape} {self.masks.dtype}")
        if self.scores.shape != (self.masks.shape[0],):
            raise ShapeMismatchError(
                f"Proposals.scores must be ({self.masks.shape[0]},), got {self.scores.shape}"
            )

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the image."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @property
    def areas(self) -> np.ndarray:
        """``(N,)`` int64 pixel counts."""
        return self.masks.reshape(len(self), self.size[0] * self.size[1]).sum(1).astype(np.int64)

    @classmethod
    def empty(cls, size: tuple[int, int]) -> Proposals:
        """No proposal for an image of ``size``."""
        return cls(np.zeros((0, *size), bool), np.zeros(0, np.float32))

    def subset(self, keep: np.ndarray) -> Proposals:
        """The proposals selected by ``keep`` (indices or a boolean mask)."""
        return Proposals(self.masks[keep], self.scores[keep])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``{"masks": packed bits (N, ceil(H*W/8)) uint8, "size": (2,), "scores": (N,)}`` for npz files."""
        flat = self.masks.reshape(len(self), self.size[0] * self.size[1])
        return {"masks": np.packbits(flat, axis=1), "size": np.asarray(self.size, np.int64), "scores": self.scores}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], what: str = "proposals") -> Proposals:
        """Inverse of :meth:`to_arrays`.

        Raises:
            DataError: missing entries or inconsistent sizes (``what`` names the source).
        """
        try:
            h, w = (int(v) for v in arrays["size"])
            packed, scores = arrays["masks"], np.asarray(arrays["scores"], np.float32)
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"{what}: not a proposals file ({exc})") from exc
        if packed.ndim != 2 or packed.shape != (len(scores), -(-h * w // 8)):
            raise DataError(f"{what}: packed masks {packed.shape} do not fit {len(scores)} proposals of {h}x{w}")
        bits = np.unpackbits(packed, axis=1, count=h * w)
        return cls(bits.reshape(-1, h, w).astype(bool), scores)


class Proposer(Protocol):
    """Anything that proposes object masks for an image."""

    name: str

    def propose(self, rgb: np.ndarray, depth: np.ndarray | None = None, labels: np.ndarray | None = None) -> Proposals:
        """``(H, W, 3) uint8`` RGB (+ optional ``(H, W)`` depth in metres) -> :class:`Proposals`.

        ``labels`` (``(H, W)`` ground-truth ids) is read by the oracle proposer only.
        """
        ...


def check_image(rgb: object, depth: object = None) -> None:
    """Validates a proposer's input.

    Raises:
        ShapeMismatchError: not ``(H, W, 3)``, or depth of another size. DataError: not uint8.
    """
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ShapeMismatchError(f"proposer: image must be (H, W, 3) RGB, got {getattr(rgb, 'shape', type(rgb))}")
    if rgb.dtype != np.uint8:
        raise DataError(f"proposer: image must be uint8 RGB, got {rgb.dtype}")
    if rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise ShapeMismatchError(f"proposer: image {rgb.shape[1]}x{rgb.shape[0]} is too small (at least 8x8)")
    if depth is not None:
        if not isinstance(depth, np.ndarray) or depth.shape != rgb.shape[:2]:
            raise ShapeMismatchError(
                f"proposer: depth {getattr(depth, 'shape', type(depth))} does not match the image {rgb.shape[:2]}"
            )
