"""Spatial augmentations that keep track of where every output pixel came from.

FC (SFC section 3.3) needs, for two random crops of one image, the original-image coordinates of
each feature cell (the map ``Phi`` of equation 4). A crop is a box ``(y0, x0, h, w)`` in original
pixels; :func:`cell_centers` turns a box and a feature-map size into those coordinates.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch


def random_crop_box(
    height: int,
    width: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.0, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    min_side: int = 8,
) -> tuple[int, int, int, int]:
    """Samples a RandomResizedCrop-style box ``(y0, x0, h, w)`` inside a ``height x width`` image.

    The area fraction is uniform in ``scale`` and the aspect ratio log-uniform in ``ratio``;
    ``min_side`` keeps degenerate (sub-pixel) crops out. Falls back to the whole image.
    """
    area = height * width
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_r))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if min_side <= w <= width and min_side <= h <= height:
            y0 = int(rng.integers(0, height - h + 1))
            x0 = int(rng.integers(0, width - w + 1))
            return y0, x0, h, w
    return 0, 0, height, width


def crop_resize(image: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Crops ``box`` from an ``(H, W, 3) uint8`` image and resizes it to ``(size, size, 3)``."""
    y0, x0, h, w = box
    patch = image[y0 : y0 + h, x0 : x0 + w]
    interp = cv2.INTER_AREA if h > size and w > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """``N x (H, W, 3) uint8`` -> ``(N, 3, H, W) float32`` in [0, 1]."""
    arr = np.stack(images).astype(np.float32) / 255.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def cell_centers(boxes: torch.Tensor, fh: int, fw: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Original-image coordinates of the centres of an ``fh x fw`` feature grid over each box.

    Args:
        boxes: ``(B, 4)`` float boxes ``(y0, x0, h, w)`` in original-image pixels.
        fh, fw: feature-map height and width.

    Returns:
        ``centers``: ``(B, fh * fw, 2)`` float ``(y, x)`` per cell, row-major;
        ``bin_diag``: ``(B,)`` the diagonal length of one cell in original pixels.
    """
    boxes = boxes.float()
    iy = (torch.arange(fh, dtype=torch.float32, device=boxes.device) + 0.5) / fh
    ix = (torch.arange(fw, dtype=torch.float32, device=boxes.device) + 0.5) / fw
    gy, gx = torch.meshgrid(iy, ix, indexing="ij")
    y = boxes[:, 0, None] + gy.reshape(1, -1) * boxes[:, 2, None]
    x = boxes[:, 1, None] + gx.reshape(1, -1) * boxes[:, 3, None]
    diag = torch.sqrt((boxes[:, 2] / fh) ** 2 + (boxes[:, 3] / fw) ** 2)
    return torch.stack([y, x], dim=-1), diag


def colour_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.1,
    contrast: float = 0.1,
    saturation: float = 0.1,
    hue: float = 0.1,
) -> np.ndarray:
    """A random brightness, contrast, saturation and hue change (torchvision ``ColorJitter``'s ranges).

    Factors are drawn uniformly from ``[1 - x, 1 + x]`` for brightness, contrast and saturation, and
    the hue shift from ``[-hue, hue]`` of a full turn; they apply in that order.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        rng: the random generator of the factors.

    Returns:
        ``(H, W, 3) uint8`` RGB.
    """
    img = image.astype(np.float32)
    img = img * rng.uniform(1 - brightness, 1 + brightness)
    grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    img = (img - grey.mean()) * rng.uniform(1 - contrast, 1 + contrast) + grey.mean()
    grey = (img @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    img = grey + (img - grey) * rng.uniform(1 - saturation, 1 + saturation)
    out = np.clip(img, 0, 255).astype(np.uint8)
    shift = rng.uniform(-hue, hue)
    if shift:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(shift * 180))) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return out
