"""Label images: palette PNGs (DAVIS convention) and integer label maps.

A label map is an ``(H, W)`` integer array; 0 is background, every other value an object id.
DAVIS annotation PNGs are palette ("P" mode) images whose pixel values are the ids.

This module is the one place where label PNGs are read (:func:`read_label_png`) and written
(:func:`write_label_png`): data readers, metrics, evaluation protocols and the ROS nodes all go
through it.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from corr_core.errors import DataError

__all__ = ["davis_palette", "read_label_png", "write_label_png"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types: 0 = greyscale, 3 = palette (indexed).
_GREY, _PALETTE = 0, 3


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


def _decode_png_unfiltered(data: bytes) -> tuple[np.ndarray, int] | None:
    """Decodes an 8-bit palette/greyscale, non-interlaced PNG whose rows all use filter 0.

    That is what Pillow and most label writers produce for palette PNGs (every DAVIS annotation
    is one); decoding it is one ``zlib`` call and a reshape, several times faster than Pillow.

    Returns:
        ``((H, W) uint8 pixel values (palette indices or grey levels), PNG colour type)``, or
        None when the file is anything else (the caller then falls back to Pillow, which also
        reports broken files).
    """
    if not data.startswith(_PNG_SIGNATURE):
        return None
    pos = len(_PNG_SIGNATURE)
    header = None
    idat = []
    try:
        while pos + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[pos : pos + 8])
            body = data[pos + 8 : pos + 8 + length]
            pos += 12 + length
            if kind == b"IHDR":
                header = struct.unpack(">IIBBBBB", body)
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
        if header is None or not idat:
            return None
        width, height, depth, colour, _, _, interlace = header
        if depth != 8 or colour not in (_GREY, _PALETTE) or interlace != 0:
            return None
        raw = zlib.decompress(b"".join(idat))
    except (struct.error, zlib.error):
        return None
    if len(raw) != height * (width + 1):
        return None
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, width + 1)
    if rows[:, 0].any():
        return None  # filtered rows: leave them to Pillow
    return rows[:, 1:].copy(), colour  # a writable (H, W) array, as np.array(Image) gives


def read_label_png(path: str | Path, require_palette: bool = True) -> np.ndarray:
    """Reads a label PNG into an ``(H, W)`` integer map (pixel value = id).

    The values are those of ``np.array(Image.open(path))``, as the official DAVIS evaluator reads
    them. Unfiltered 8-bit palette/greyscale files (what label writers produce) are decoded
    directly, several times faster; everything else goes through Pillow.

    Args:
        path: a palette PNG (pixel value = id); with ``require_palette=False`` also 8/16-bit
            greyscale PNGs, whose values are taken as ids.
        require_palette: reject PNGs that are not palette images (the DAVIS convention).

    Returns:
        ``(H, W)`` ``uint8`` for palette/8-bit images, ``uint16`` for 16-bit ones.

    Raises:
        DataError: if the file is missing, unreadable, or not a palette image when one is required
            (the message names the file).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        data = b""
    fast = _decode_png_unfiltered(data) if data else None
    if fast is not None and (fast[1] == _PALETTE or not require_palette):
        return fast[0]
    return _read_label_png_pillow(path, require_palette)


def _read_label_png_pillow(path: Path, require_palette: bool) -> np.ndarray:
    """:func:`read_label_png` through Pillow (every PNG flavour; reports broken files)."""
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
