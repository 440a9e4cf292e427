"""Label images: palette PNGs (DAVIS convention) and integer label maps.

A label map is an ``(H, W)`` integer array; 0 is background, every other value an object id.
DAVIS annotation PNGs are palette ("P" mode) images whose pixel values are the ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from corr_core.errors import DataError


def davis_palette(n: int = 256) -> np.ndarray:
    """The DAVIS/PASCAL VOC colour palette (bit-interleaved), ``(n, 3) uint8``; id 0 is black."""
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def read_label_png(path: str | Path, require_palette: bool = True) -> np.ndarray:
    """Reads a label PNG into an ``(H, W)`` integer map.

    Args:
        path: a palette PNG (pixel value = id); with ``require_palette=False`` also 8/16-bit
            greyscale PNGs, whose values are taken as ids.
        require_palette: reject PNGs that are not palette images (the DAVIS convention).

    Returns:
        ``(H, W)`` ``uint8`` for palette/8-bit images, ``uint16`` for 16-bit ones.

    Raises:
        DataError: if the file is missing, unreadable, or not a palette image when one is required.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label image not found: {path}")
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode == "P":
                return np.array(im, dtype=np.uint8)
            if require_palette:
                raise DataError(
                    f"{path}: label PNG must be a palette (mode 'P') image with one index per object, "
                    f"got mode {mode!r}"
                )
            if mode in ("L", "1"):
                return np.array(im.convert("L"), dtype=np.uint8)
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.array(im)
                if arr.min() < 0 or arr.max() > 65535:
                    raise DataError(f"{path}: label values outside 0..65535")
                return arr.astype(np.uint16)
            raise DataError(f"{path}: cannot use image mode {mode!r} as a label map")
    except DataError:
        raise
    except Exception as exc:  # PIL raises many types for broken files
        raise DataError(f"{path}: unreadable label image ({exc})") from exc


def write_label_png(path: str | Path, labels: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Writes an ``(H, W)`` label map with ids 0..255 as a palette PNG (DAVIS palette by default).

    Raises:
        DataError: if ``labels`` is not 2-D or holds ids outside 0..255 (a palette PNG cannot).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise DataError(f"label map for {path} must be 2-D (H, W), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise DataError(f"{path}: palette PNG holds ids 0..255, got {labels.min()}..{labels.max()}")
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    pal = davis_palette() if palette is None else np.asarray(palette, dtype=np.uint8)
    im.putpalette(pal.reshape(-1).tolist())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
