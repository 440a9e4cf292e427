"""Label PNGs: the one reader (fast path and Pillow agree) and the one writer."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from corr_core.data.labels import _decode_png_unfiltered, read_label_png, write_label_png
from corr_core.errors import DataError


def _png_unfiltered(path: Path, pixels: np.ndarray, colour: int) -> Path:
    """An 8-bit PNG of colour type ``colour`` (0 grey, 3 palette) whose rows all use filter 0."""
    h, w = pixels.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(h))
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
    if colour == 3:
        body += chunk(b"PLTE", bytes(range(256)) * 3)
    body += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def test_fast_png_reader_agrees_with_pillow(tmp_path: Path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(37, 53)).astype(np.uint8)
    write_label_png(tmp_path / "p.png", labels)  # palette, unfiltered rows: fast path
    assert _decode_png_unfiltered((tmp_path / "p.png").read_bytes()) is not None
    np.testing.assert_array_equal(read_label_png(tmp_path / "p.png", require_palette=False), labels)
    cv2.imwrite(str(tmp_path / "g.png"), np.tile(np.arange(53, dtype=np.uint8), (37, 1)))  # filtered rows
    np.testing.assert_array_equal(
        read_label_png(tmp_path / "g.png", require_palette=False), np.array(Image.open(tmp_path / "g.png"))
    )
    with pytest.raises(DataError, match="missing.png"):
        read_label_png(tmp_path / "missing.png", require_palette=False)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="bad.png"):
        read_label_png(tmp_path / "bad.png", require_palette=False)


def test_fast_path_keeps_the_palette_rule_and_returns_writable_arrays(tmp_path: Path):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 7, size=(9, 11)).astype(np.uint8)
    pal = _png_unfiltered(tmp_path / "pal.png", ids, colour=3)
    grey = _png_unfiltered(tmp_path / "grey.png", ids, colour=0)
    for path in (pal, grey):
        assert _decode_png_unfiltered(path.read_bytes()) is not None  # both take the fast path
        np.testing.assert_array_equal(read_label_png(path, require_palette=False), np.array(Image.open(path)))
    out = read_label_png(pal)
    assert out.dtype == np.uint8 and out.flags.writeable
    out[0, 0] = 3  # callers may edit what they read
    with pytest.raises(DataError, match=r"grey\.png.*palette"):
        read_label_png(grey)  # a greyscale PNG is still refused where a palette PNG is required


def test_sixteen_bit_labels_and_the_writer_limits(tmp_path: Path):
    wide = np.array([[0, 300], [65535, 7]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "w.png")
    out = read_label_png(tmp_path / "w.png", require_palette=False)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, wide)
    with pytest.raises(DataError, match="0..255"):
        write_label_png(tmp_path / "x.png", wide)
    with pytest.raises(DataError, match="2-D"):
        write_label_png(tmp_path / "x.png", np.zeros((2, 2, 3), np.uint8))
    write_label_png(tmp_path / "sub" / "ok.png", np.array([[0, 255]], np.uint8))
    assert Image.open(tmp_path / "sub" / "ok.png").mode == "P"
    np.testing.assert_array_equal(read_label_png(tmp_path / "sub" / "ok.png"), [[0, 255]])
