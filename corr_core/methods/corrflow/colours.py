"""Colour quantisation of CorrFlow: ``K`` k-means clusters of the Lab ``ab`` plane.

CorrFlow (Lai & Xie, BMVC 2019) reconstructs a frame as a *classification* over colour
clusters: 16 k-means centroids of the ``ab`` channels of Lab, fitted on pixels of the training
videos; every pixel's class is its nearest centroid. Lightness is left out, so the class says
"which colour", not "how bright".

Lab here is OpenCV's 8-bit Lab (``a``, ``b`` in 0..255, 128 = grey). Quantising goes through a
256 x 256 lookup table over every ``(a, b)``, so a frame costs one colour conversion and one gather.
"""

from __future__ import annotations

import cv2
import numpy as np

from corr_core.errors import ConfigError


def lab_ab(rgb: np.ndarray) -> np.ndarray:
    """``(..., H, W, 3) uint8`` RGB -> ``(..., H, W, 2) uint8`` Lab ``a``, ``b`` (OpenCV 8-bit)."""
    flat = rgb.reshape(-1, rgb.shape[-2], 3)
    lab = cv2.cvtColor(np.ascontiguousarray(flat), cv2.COLOR_RGB2LAB)
    return lab[..., 1:].reshape(*rgb.shape[:-1], 2)


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iters: int = 30) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding.

    Args:
        points: ``(N, D) float`` samples, ``N >= 1``.
        k: clusters.
        rng: the seeding's random generator (the result is a function of it and ``points``).
        iters: Lloyd iterations.

    Returns:
        ``(k, D) float64`` centroids, sorted lexicographically (so equal fits compare equal). An
        empty cluster is re-seeded at the point farthest from its centroid.
    """
    pts = np.asarray(points, dtype=np.float64)
    centroids = [pts[int(rng.integers(len(pts)))]]
    d2 = ((pts - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        i = int(rng.choice(len(pts), p=d2 / total)) if total > 0 else int(rng.integers(len(pts)))
        centroids.append(pts[i])
        d2 = np.minimum(d2, ((pts - pts[i]) ** 2).sum(1))
    c = np.stack(centroids)
    for _ in range(iters):
        dist = ((pts[:, None, :] - c[None]) ** 2).sum(-1)
        assign = dist.argmin(1)
        new = c.copy()
        for j in range(k):
            members = pts[assign == j]
            if len(members):
                new[j] = members.mean(0)
            else:
                new[j] = pts[int(dist.min(1).argmax())]
        if np.allclose(new, c):
            break
        c = new
    return c[np.lexsort(c.T[::-1])]


class ColourQuantizer:
    """Nearest-centroid classes of the Lab ``ab`` colours of RGB images.

    Args:
        centroids: ``(K, 2)`` centroids in OpenCV 8-bit ``ab`` units.

    Raises:
        ConfigError: centroids of another shape.
    """

    def __init__(self, centroids: np.ndarray) -> None:
        c = np.asarray(centroids, dtype=np.float64)
        if c.ndim != 2 or c.shape[1] != 2 or len(c) < 2:
            raise ConfigError(f"colour centroids must be (K >= 2, 2) ab values, got shape {c.shape}")
        self.centroids = c
        grid = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1).reshape(-1, 1, 2)
        self._lut = ((grid - c[None]) ** 2).sum(-1).argmin(1).astype(np.uint8).reshape(256, 256)

    @property
    def num_colours(self) -> int:
        return len(self.centroids)

    @classmethod
    def fit(cls, frames: list[np.ndarray], k: int, rng: np.random.Generator,
            pixels_per_frame: int = 2000) -> ColourQuantizer:
        """Fits ``k`` clusters to ``pixels_per_frame`` random pixels of each frame.

        Args:
            frames: ``(H, W, 3) uint8`` RGB frames.
            k: number of colour classes (CorrFlow: 16).
            rng: random generator of the pixel sample and the seeding.

        Raises:
            ConfigError: no frames, or ``k < 2``.
        """
        if k < 2:
            raise ConfigError(f"colours (k-means clusters) must be >= 2, got {k}")
        if not frames:
            raise ConfigError("no frames to fit the colour clusters on")
        samples = []
        for f in frames:
            ab = lab_ab(f).reshape(-1, 2)
            samples.append(ab[rng.integers(0, len(ab), min(pixels_per_frame, len(ab)))])
        return cls(kmeans(np.concatenate(samples).astype(np.float64), k, rng))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``(..., H, W, 3) uint8`` RGB -> ``(..., H, W) uint8`` colour classes in ``[0, K)``."""
        ab = lab_ab(rgb)
        return self._lut[ab[..., 0], ab[..., 1]]

    def to_rgb(self, classes: np.ndarray, lightness: int = 160) -> np.ndarray:
        """``(H, W)`` classes -> ``(H, W, 3) uint8`` RGB at one lightness (to look at the targets)."""
        ab = self.centroids[classes].round().clip(0, 255).astype(np.uint8)
        lab = np.concatenate([np.full((*classes.shape, 1), lightness, np.uint8), ab], -1)
        return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
