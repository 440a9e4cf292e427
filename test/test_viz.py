"""Label colouring and overlays."""

from __future__ import annotations

import numpy as np
import pytest

from corr_core.errors import ShapeMismatchError
from corr_core.viz import colorize, contours, overlay


def labels_two_objects():
    lab = np.zeros((12, 16), np.uint8)
    lab[2:6, 2:6] = 1
    lab[6:10, 8:14] = 2
    return lab


def test_colorize_uses_the_davis_palette():
    out = colorize(labels_two_objects())
    assert out.shape == (12, 16, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (0, 0, 0)
    assert tuple(out[3, 3]) == (128, 0, 0)  # DAVIS id 1
    assert tuple(out[7, 9]) == (0, 128, 0)  # DAVIS id 2
    wide = colorize(np.array([[0, 300]], dtype=np.uint16))  # ids beyond 255 still get a colour
    assert wide[0, 1].any()


def test_contours_are_object_pixels_next_to_another_id():
    lab = labels_two_objects()
    edge = contours(lab)
    assert edge[2, 2] and edge[5, 3] and edge[3, 5]
    assert not edge[3, 3]  # interior
    assert not edge[1, 2]  # background is never a contour
    assert edge.sum() == 12 + 16  # rings of the 4x4 and 4x6 rectangles


def test_overlay_blends_inside_objects_and_keeps_background():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    lab = labels_two_objects()
    np.testing.assert_array_equal(overlay(img, lab, alpha=0.0, contour=False), img)
    full = overlay(img, lab, alpha=1.0, contour=False)
    np.testing.assert_array_equal(full[lab > 0], colorize(lab)[lab > 0])
    half = overlay(img, lab, alpha=0.5, contour=False)
    expected = np.rint((img[3, 3].astype(float) + np.array([128, 0, 0])) / 2)
    np.testing.assert_array_equal(half[3, 3], expected)
    np.testing.assert_array_equal(half[lab == 0], img[lab == 0])
    outlined = overlay(img, lab, alpha=0.5, contour=True)
    assert tuple(outlined[2, 2]) == (128, 0, 0)
    np.testing.assert_array_equal(outlined[3, 3], half[3, 3])


def test_overlay_rejects_mismatched_inputs():
    img = np.zeros((12, 16, 3), np.uint8)
    with pytest.raises(ShapeMismatchError):
        overlay(img, np.zeros((12, 15), np.uint8))
    with pytest.raises(ShapeMismatchError):
        overlay(img[..., 0], np.zeros((12, 16), np.uint8))
    with pytest.raises(ShapeMismatchError):
        colorize(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError):
        overlay(img, np.zeros((12, 16), np.uint8), alpha=1.5)
