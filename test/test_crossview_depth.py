"""An RGB-D anchor camera in cross-view mode: depth images decoded (REP 118 encodings), kept by
stamp beside the synchronised sets, and refused with the problem named."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from corr_core.data.image_codec import decode_depth, encode_pixels
from corr_core.errors import ConfigError, DataError, UnknownEncodingError
from corr_core.sync import NearestStamp


def depth_msg(pixels: np.ndarray, encoding: str, bigendian: bool = False) -> SimpleNamespace:
    h, w = pixels.shape
    data = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<")).tobytes()
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian),
                           step=len(data) // h, data=data)


def test_millimetre_and_metre_depth_images_decode_to_metres_with_unknown_as_zero():
    mm = np.array([[0, 500], [1250, 65535]], np.uint16)
    for enc in ("16UC1", "mono16"):
        for big in (False, True):
            out = decode_depth(depth_msg(mm, enc, big))
            assert out.dtype == np.float32
            np.testing.assert_allclose(out, [[0.0, 0.5], [1.25, 65.535]], rtol=1e-6)
    metres = np.array([[np.nan, 0.7], [np.inf, -1.0]], np.float32)
    np.testing.assert_allclose(decode_depth(depth_msg(metres, "32FC1")), [[0.0, 0.7], [0.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(decode_depth(depth_msg(metres, "32FC1", True)), [[0.0, 0.7], [0.0, 0.0]], rtol=1e-6)
    # the bag writer's 16UC1 layout reads back the same
    fields = encode_pixels(mm, "16UC1")
    np.testing.assert_allclose(decode_depth(fields), decode_depth(depth_msg(mm, "16UC1")))


def test_a_colour_image_or_a_short_buffer_on_the_depth_topic_is_named():
    rgb = SimpleNamespace(height=2, width=2, encoding="rgb8", is_bigendian=0, step=6, data=bytes(12))
    with pytest.raises(UnknownEncodingError, match=r"depth images on topic /ego/depth.*got encoding 'rgb8'"):
        decode_depth(rgb, "/ego/depth")
    short = depth_msg(np.zeros((4, 4), np.float32), "32FC1")
    short.data = short.data[:10]
    with pytest.raises(DataError, match="data holds 10 bytes"):
        decode_depth(short)


def test_the_nearest_depth_within_the_slop_is_found_and_old_ones_are_forgotten():
    buf: NearestStamp[str] = NearestStamp(size=3)
    assert buf.nearest(100, 10) is None
    for stamp in (100, 200, 300, 400):
        buf.put(stamp, f"d{stamp}")
    assert buf.nearest(205, 10) == "d200" and buf.nearest(390, 10) == "d400"
    assert buf.nearest(250, 10) is None  # between two, out of the slop
    assert buf.nearest(100, 10) is None  # the oldest went when a fourth came
    buf.clear()
    assert buf.nearest(400, 10) is None
    with pytest.raises(ConfigError, match="size must be >= 1"):
        NearestStamp(0)


def test_the_cross_view_link_serves_the_anchor_depth_of_the_frame_stamp():
    from corr_core.crossview.multicam import CrossViewLink

    link = CrossViewLink(matcher=None, anchor="ego", cameras=["ego", "exo1"], depth_slop_s=0.01)
    a, b = np.full((2, 2), 1.0, np.float32), np.full((2, 2), 2.0, np.float32)
    link.put_depth(1_000_000_000, a)
    link.put_depth(1_100_000_000, b)
    assert link.depth_at(1_000_000_000) is a and link.depth_at(1_105_000_000) is b
    assert link.depth_at(1_050_000_000) is None  # no depth for that frame: it is matched without


def test_depth_without_a_rig_is_a_configuration_error():
    from corr_ros.tracking.crossview import build_link

    params = {"crossview_checkpoint": "corr_core/assets/checkpoints/pcc_resnet18_l2_prior.safetensors",
              "anchor_camera": "ego", "crossview_proposer": "none", "crossview_rig": "", "crossview_depth": True}
    with pytest.raises(ConfigError, match="'crossview_depth' needs 'crossview_rig'"):
        build_link(params.__getitem__, ["ego", "exo1"], "cpu", None)
