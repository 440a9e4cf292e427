"""The sensor_msgs pixel codec on its own: no ROS, no rosbags, plain objects with the message fields."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from corr_core.data.image_codec import (
    ENCODINGS,
    LABEL_ENCODINGS,
    ImageFields,
    compress_image,
    decode_compressed,
    decode_image,
    default_encoding,
    encode_pixels,
    to_rgb,
)
from corr_core.errors import ConfigError, DataError, UnknownEncodingError

H, W = 5, 7  # odd sizes catch stride mistakes


def _message(fields: ImageFields) -> SimpleNamespace:
    """What a message class would hold (rclpy keeps ``data`` as bytes)."""
    return SimpleNamespace(**{**fields.__dict__, "data": fields.data.tobytes()})


@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_round_trips(encoding: str, big_endian: bool, padding: int) -> None:
    rng = np.random.default_rng(0)
    if encoding in LABEL_ENCODINGS:
        dtype = np.uint16 if "16" in encoding else np.uint8
        array = rng.integers(0, np.iinfo(dtype).max + 1, (H, W)).astype(dtype)
        expected = array
    else:
        array = rng.integers(0, 256, (H, W, 4 if "a" in encoding else 3)).astype(np.uint8)
        expected = array[..., 2::-1] if encoding.startswith("bgr") else array[..., :3]
    fields = encode_pixels(array, encoding, big_endian=big_endian, row_padding=padding)
    itemsize = array.dtype.itemsize * (array.shape[2] if array.ndim == 3 else 1)
    assert (fields.height, fields.width, fields.encoding) == (H, W, encoding)
    assert fields.step == W * itemsize + padding and fields.data.shape == (H * fields.step,)
    assert fields.is_bigendian == int(big_endian and array.dtype == np.uint16)
    out = decode_image(_message(fields), "/cam/image_raw")
    assert out.dtype == array.dtype and out.dtype.byteorder in ("=", "|")
    np.testing.assert_array_equal(out, expected)


def test_big_endian_bytes_and_default_encodings() -> None:
    msg = SimpleNamespace(height=1, width=2, encoding="mono16", is_bigendian=1, step=4, data=bytes([1, 2, 0, 7]))
    np.testing.assert_array_equal(decode_image(msg), [[258, 7]])
    assert default_encoding(np.zeros((2, 2), np.uint16)) == "mono16"
    assert default_encoding(np.zeros((2, 2, 4), np.uint8)) == "rgba8"
    with pytest.raises(DataError, match="float32"):
        default_encoding(np.zeros((2, 2), np.float32))


def test_bad_messages_and_arrays_name_what_is_wrong() -> None:
    with pytest.raises(UnknownEncodingError, match=r"yuv422.*on topic /cam"):
        decode_image(SimpleNamespace(height=1, width=1, encoding="yuv422", is_bigendian=0, step=2, data=b"00"), "/cam")
    short = SimpleNamespace(height=H, width=W, encoding="rgb8", is_bigendian=0, step=3 * W, data=bytes(3 * W * H - 1))
    with pytest.raises(DataError, match="bytes"):
        decode_image(short)
    with pytest.raises(DataError, match="step"):
        decode_image(SimpleNamespace(height=1, width=4, encoding="rgb8", is_bigendian=0, step=3, data=b"abc"))
    with pytest.raises(DataError, match=r"\(H, W, 3\)"):
        encode_pixels(np.zeros((H, W), np.uint8), "rgb8")
    with pytest.raises(UnknownEncodingError, match="32FC1"):
        encode_pixels(np.zeros((H, W), np.float32), "32FC1")
    with pytest.raises(ConfigError, match="row_padding"):
        encode_pixels(np.zeros((H, W), np.uint8), row_padding=-1)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_round_trip(fmt: str) -> None:
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[..., 0], rgb[4:12, 6:18, 1] = 200, 120
    name, data = compress_image(rgb, fmt)
    assert name == fmt and data.dtype == np.uint8 and data.ndim == 1
    out = decode_compressed(SimpleNamespace(format=name, data=data.tobytes()))
    assert out.shape == rgb.shape
    diff = np.abs(out.astype(int) - rgb)
    assert diff.max() == 0 if fmt == "png" else diff.mean() < 6  # jpeg is lossy at sharp edges
    assert out[0, 0, 0] > 150 and out[0, 0, 2] < 50  # RGB order (OpenCV works in BGR)
    depth = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    ok, buf = cv2.imencode(".png", depth)
    assert ok
    msg = SimpleNamespace(format="16UC1; compressedDepth png", data=bytes(12) + buf.tobytes())
    np.testing.assert_array_equal(decode_compressed(msg), depth)
    with pytest.raises(UnknownEncodingError, match="webp"):
        decode_compressed(SimpleNamespace(format="webp", data=b"xx"), "/cam")
    with pytest.raises(DataError, match="cannot decode"):
        decode_compressed(SimpleNamespace(format="png", data=b"not a png"))
    with pytest.raises(ConfigError, match="bmp"):
        compress_image(rgb, "bmp")


def test_to_rgb() -> None:
    np.testing.assert_array_equal(to_rgb(np.full((2, 2), 7, np.uint8)), np.full((2, 2, 3), 7, np.uint8))
    assert to_rgb(np.array([[0, 1000]], np.uint16)).tolist() == [[[0, 0, 0], [255, 255, 255]]]
    assert to_rgb(np.zeros((2, 2, 4), np.uint8)).shape == (2, 2, 3)
    with pytest.raises(DataError, match="float32"):
        to_rgb(np.zeros((2, 2), np.float32))


def test_codec_loads_neither_ros_nor_rosbags_nor_a_bag_module() -> None:
    code = (
        "import sys, corr_core.data.image_codec; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rosbags', 'rclpy', 'sensor_msgs') "
        "or m.startswith('corr_core.data.bag')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_old_bag_import_paths_still_work() -> None:
    from corr_core.data import bag, image_codec

    assert bag.decode_image is image_codec.decode_image and bag.to_rgb is image_codec.to_rgb
    for name in ("TYPESTORE", "BagWriter", "read_synced", "bag_info", "encode_image", "make_header",
                 "header_stamp_ns", "STORAGES", "decode_compressed", "SyncedFrames", "CameraCalibration"):
        assert hasattr(bag, name), name
