"""corr_ros message conversions (rclpy messages, no cv_bridge), QoS profiles and parameter specs.

No test here starts a node (so none carries the ``ros`` marker); they need the ROS 2 message
packages and are skipped where those are not installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("rclpy") is None or importlib.util.find_spec("sensor_msgs") is None,
    reason="rclpy and sensor_msgs (ROS 2 Jazzy wheels) are not installed",
)

H, W = 5, 7


@pytest.fixture
def header():
    from std_msgs.msg import Header

    from corr_ros.conversions import ns_to_stamp

    return ns_to_stamp(1_234_567_890_123, Header(frame_id="cam0_optical"))


def _rgb(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3)).astype(np.uint8)


def test_conversions_import_no_bag_module():
    """The live node decodes camera images with the codec alone: no rosbags, no bag reader."""
    code = (
        "import sys, corr_ros.conversions; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rosbags' or m.startswith('corr_core.data.bag')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_decode_to_rgb(encoding, padding, header):
    from corr_ros.conversions import array_to_image, image_to_rgb

    rgb = _rgb()
    alpha = np.full((H, W, 1), 200, np.uint8)
    raw = {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[..., ::-1], alpha], axis=2),
    }[encoding]
    msg = array_to_image(np.ascontiguousarray(raw), encoding, header, row_padding=padding)
    assert msg.step == W * raw.shape[2] + padding
    assert msg.header.frame_id == "cam0_optical" and msg.header.stamp == header.stamp
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("big_endian", [False, True])
def test_16bit_labels_round_trip_with_byte_order_and_padding(encoding, big_endian):
    from corr_ros.conversions import array_to_image, image_to_labels

    labels = np.random.default_rng(1).integers(0, 65536, (H, W)).astype(np.uint16)
    msg = array_to_image(labels, encoding, big_endian=big_endian, row_padding=2)
    assert msg.is_bigendian == int(big_endian) and msg.step == 2 * W + 2
    out = image_to_labels(msg)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, labels)


def test_big_endian_bytes_are_interpreted_as_big_endian():
    from sensor_msgs.msg import Image

    from corr_ros.conversions import image_to_labels

    msg = Image(height=1, width=2, encoding="mono16", is_bigendian=1, step=4, data=bytes([1, 2, 0, 7]))
    np.testing.assert_array_equal(image_to_labels(msg), [[258, 7]])
    msg.is_bigendian = 0
    np.testing.assert_array_equal(image_to_labels(msg), [[513, 7 * 256]])


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_is_a_label_map_and_a_grey_image(encoding):
    from corr_ros.conversions import array_to_image, image_to_labels, image_to_rgb

    grey = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    msg = array_to_image(grey, encoding, row_padding=1)
    np.testing.assert_array_equal(image_to_labels(msg), grey)
    rgb = image_to_rgb(msg)
    assert rgb.shape == (H, W, 3)
    np.testing.assert_array_equal(rgb[..., 1], grey)


def test_labels_and_rgb_messages(header):
    from corr_core.errors import DataError
    from corr_ros.conversions import image_to_labels, image_to_rgb, labels_to_image, rgb_to_image

    labels = np.zeros((H, W), np.int64)
    labels[1:3, 2:5] = 300
    msg = labels_to_image(labels, header)
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("mono16", W, H, 2 * W)
    np.testing.assert_array_equal(image_to_labels(msg), labels)
    with pytest.raises(DataError, match="65535"):
        labels_to_image(labels + 70000)
    msg = rgb_to_image(_rgb(3), header)
    assert msg.encoding == "rgb8"
    np.testing.assert_array_equal(image_to_rgb(msg), _rgb(3))


def test_unknown_encodings_are_named(header):
    from sensor_msgs.msg import Image

    from corr_core.errors import UnknownEncodingError
    from corr_ros.conversions import array_to_image, image_to_labels, image_to_rgb

    msg = Image(height=H, width=W, encoding="yuv422", step=2 * W, data=bytes(2 * W * H))
    with pytest.raises(UnknownEncodingError, match="yuv422"):
        image_to_rgb(msg)
    with pytest.raises(UnknownEncodingError, match="rgb8"):
        image_to_labels(array_to_image(_rgb(), "rgb8"))
    with pytest.raises(UnknownEncodingError, match="32FC1"):
        array_to_image(np.zeros((H, W), np.float32), "32FC1")


def test_truncated_image_is_a_data_error():
    from sensor_msgs.msg import Image

    from corr_core.errors import DataError
    from corr_ros.conversions import image_to_rgb

    msg = Image(height=H, width=W, encoding="rgb8", step=3 * W, data=bytes(3 * W * H - 1))
    with pytest.raises(DataError, match="bytes"):
        image_to_rgb(msg)


def test_compressed_png_decodes_to_rgb():
    from sensor_msgs.msg import CompressedImage

    from corr_ros.conversions import compressed_to_rgb

    rgb = _rgb(4)
    ok, buf = cv2.imencode(".png", rgb[..., ::-1])
    assert ok
    msg = CompressedImage(format="png", data=buf.tobytes())
    np.testing.assert_array_equal(compressed_to_rgb(msg), rgb)


def test_camera_info_fields(header):
    from corr_ros.conversions import camera_info

    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    msg = camera_info(W, H, header, K, np.zeros(5), distortion_model="plumb_bob")
    assert (msg.width, msg.height, msg.distortion_model) == (W, H, "plumb_bob")
    np.testing.assert_array_equal(np.asarray(msg.k).reshape(3, 3), K)
    np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4)[:, :3], K)
    uncal = camera_info(W, H)
    assert not np.any(uncal.k)


def test_qos_profiles_and_bad_values():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from corr_core.errors import ConfigError
    from corr_ros.qos import reliable_qos, sensor_qos

    assert sensor_qos().reliability == ReliabilityPolicy.BEST_EFFORT
    assert sensor_qos(3, "reliable").reliability == ReliabilityPolicy.RELIABLE
    assert reliable_qos(transient_local=True).durability == DurabilityPolicy.TRANSIENT_LOCAL
    with pytest.raises(ConfigError, match="reliability"):
        sensor_qos(5, "sometimes")
    with pytest.raises(ConfigError, match="depth"):
        reliable_qos(0)


def test_param_spec_checks():
    from rclpy.parameter import Parameter

    from corr_ros.params import ParamSpec, flatten_yaml_params

    cams = ParamSpec(
        "cameras", Parameter.Type.STRING_ARRAY, ["a"], "camera names", min_items=1, topic_tokens=True
    )
    assert cams.check(["ego", "exo_1"]) is None
    assert "at least 1" in cams.check([])
    assert "valid relative ROS names" in cams.check(["1cam"])
    assert "duplicate" in cams.check(["a", "a"])
    dev = ParamSpec(
        "device", Parameter.Type.STRING, "cpu", "device", choices=("cpu", "cuda"), choice_pattern=r"cuda:\d+"
    )
    assert dev.check("cuda:1") is None and dev.check("tpu") is not None
    slop = ParamSpec("slop", Parameter.Type.DOUBLE, 0.05, "slop", range=(0.0, 1.0))
    assert slop.check(2.0) is not None and slop.check(True) is not None and slop.check(0.5) is None
    assert slop.descriptor().floating_point_range[0].to_value == 1.0
    assert flatten_yaml_params({"a": 1, "qos": {"input": {"depth": 3}}}) == {"a": 1, "qos.input.depth": 3}
