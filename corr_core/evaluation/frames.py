"""Frame files of the evaluation protocols: read as RGB, resized the way the reference code does."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from corr_core.errors import DataError

__all__ = ["read_rgb", "resize_rgb"]


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as ``(H, W, 3) uint8`` RGB.

    Raises:
        DataError: if the file is missing or cannot be decoded (the message names it).
    """
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except Exception as exc:  # PIL raises many types for broken files
        raise DataError(f"{path}: unreadable image ({exc})") from exc


def resize_rgb(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """``frame`` resized to ``size = (H, W)`` (bilinear, aspect ratio not kept, as CRW's and UVC's
    ``cv2.resize``); unchanged when ``size`` is None or already the frame's size."""
    if size is None or frame.shape[:2] == tuple(size):
        return frame
    return cv2.resize(frame, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
