"""sensor_msgs <-> numpy (no cv_bridge).

The pixel maths (encodings, row padding ``step``, ``is_bigendian``, channel order) is
:mod:`corr_core.data.image_codec`'s, the same that the bag reader and writer use:
:func:`~corr_core.data.image_codec.decode_image`, :func:`~corr_core.data.image_codec.decode_compressed`,
:func:`~corr_core.data.image_codec.to_rgb` and :func:`~corr_core.data.image_codec.encode_pixels` read
and write the same message fields on rclpy messages as on rosbags ones, so a live topic and a
recorded bag decode identically. This module only adapts them to rclpy message classes (and
imports no bag module).

Public edges follow corr's conventions: images ``(H, W, 3) uint8`` RGB, label maps ``(H, W)``
integer ids. Supported encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16 and the aliases 8UC1
(= mono8) and 16UC1 (= mono16); depth images 16UC1 (mm) and 32FC1 (m). Anything else raises
:class:`~corr_core.errors.UnknownEncodingError` naming the encoding.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from corr_core.data import image_codec as _codec
from corr_core.data.image_codec import ENCODINGS, LABEL_ENCODINGS
from corr_core.errors import DataError, ShapeMismatchError, UnknownEncodingError
from corr_core.geometry import pose_quaternion

__all__ = [
    "ENCODINGS",
    "LABEL_ENCODINGS",
    "array_to_image",
    "camera_info",
    "compressed_to_rgb",
    "copy_header",
    "image_to_array",
    "image_to_depth",
    "image_to_labels",
    "image_to_rgb",
    "labels_to_image",
    "ns_to_stamp",
    "pose_stamped",
    "rgb_to_image",
    "stamp_to_ns",
]


def image_to_array(msg: Image, topic: str | None = None) -> np.ndarray:
    """Decodes a ``sensor_msgs/Image``.

    Returns:
        colour encodings: ``(H, W, 3)`` uint8 RGB (BGR swapped, alpha dropped); mono8/8UC1:
        ``(H, W)`` uint8; mono16/16UC1: ``(H, W)`` uint16 in native byte order.

    Raises:
        UnknownEncodingError: for an unsupported encoding (named, with ``topic``).
        DataError: if ``step`` or the data length do not fit the size.
    """
    return _codec.decode_image(msg, topic)


def image_to_rgb(msg: Image, topic: str | None = None) -> np.ndarray:
    """A ``sensor_msgs/Image`` as ``(H, W, 3) uint8`` RGB (mono images repeated over 3 channels).

    Raises:
        UnknownEncodingError: for an unsupported encoding. DataError: for a malformed buffer.
    """
    return _codec.to_rgb(_codec.decode_image(msg, topic))


def image_to_labels(msg: Image, topic: str | None = None) -> np.ndarray:
    """A label image (mono8/8UC1/mono16/16UC1) as an ``(H, W)`` uint8/uint16 id map.

    Raises:
        UnknownEncodingError: for any other encoding (colour images are not label maps).
        DataError: for a malformed buffer.
    """
    if msg.encoding not in LABEL_ENCODINGS:
        where = f" on {topic}" if topic else ""
        raise UnknownEncodingError(
            f"label images{where} must be one of {', '.join(LABEL_ENCODINGS)}, got encoding {msg.encoding!r}"
        )
    return _codec.decode_image(msg, topic)


def image_to_depth(msg: Image, topic: str | None = None) -> np.ndarray:
    """A depth image (16UC1/mono16 millimetres or 32FC1 metres, REP 118) as ``(H, W)`` float32
    metres, 0 where the sensor has no return.

    Raises:
        UnknownEncodingError: for any other encoding. DataError: for a malformed buffer.
    """
    return _codec.decode_depth(msg, topic)


def compressed_to_rgb(msg: CompressedImage, topic: str | None = None) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (jpeg/png) as ``(H, W, 3) uint8`` RGB.

    Raises:
        UnknownEncodingError: for a format OpenCV cannot decode. DataError: for corrupt data.
    """
    return _codec.to_rgb(_codec.decode_compressed(msg, topic))


def copy_header(header: Header) -> Header:
    """A new header with the same stamp and frame id (outputs never use ``now()``)."""
    return Header(stamp=header.stamp, frame_id=header.frame_id)


def array_to_image(
    array: np.ndarray,
    encoding: str,
    header: Header | None = None,
    *,
    big_endian: bool = False,
    row_padding: int = 0,
) -> Image:
    """Builds a ``sensor_msgs/Image`` from an array already in ``encoding``'s channel order.

    Args:
        array: ``(H, W, 3|4)`` uint8 for rgb8/bgr8/rgba8/bgra8, ``(H, W)`` uint8 for mono8/8UC1,
            ``(H, W)`` uint16 for mono16/16UC1.
        encoding: one of :data:`ENCODINGS`.
        header: copied into the message (default: empty header).
        big_endian: write 16-bit pixels big-endian.
        row_padding: extra bytes at the end of each row.

    Raises:
        UnknownEncodingError: for an unsupported encoding.
        DataError: if the array does not fit the encoding.
    """
    fields = _codec.encode_pixels(array, encoding, big_endian=big_endian, row_padding=row_padding)
    msg = Image()
    if header is not None:
        msg.header = copy_header(header)
    msg.height, msg.width = fields.height, fields.width
    msg.encoding = fields.encoding
    msg.is_bigendian = fields.is_bigendian
    msg.step = fields.step
    msg.data = fields.data.tobytes()
    return msg


def labels_to_image(labels: np.ndarray, header: Header | None = None) -> Image:
    """An ``(H, W)`` integer id map as a mono16 ``sensor_msgs/Image``.

    Raises:
        ShapeMismatchError: if ``labels`` is not 2-D. DataError: for ids outside 0..65535.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ShapeMismatchError(f"label map must be (H, W), got shape {labels.shape}")
    if labels.dtype != np.uint16:
        if labels.size and (labels.min() < 0 or labels.max() > 65535):
            raise DataError(f"mono16 labels hold ids 0..65535, got {labels.min()}..{labels.max()}")
        labels = labels.astype(np.uint16)
    return array_to_image(labels, "mono16", header)


def rgb_to_image(rgb: np.ndarray, header: Header | None = None) -> Image:
    """An ``(H, W, 3) uint8`` RGB array as an rgb8 ``sensor_msgs/Image``."""
    return array_to_image(np.asarray(rgb), "rgb8", header)


def stamp_to_ns(header: Header) -> int:
    """The header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def ns_to_stamp(stamp_ns: int, header: Header | None = None) -> Header:
    """A header (new, or ``header`` updated in place) with the stamp set from nanoseconds."""
    header = header if header is not None else Header()
    header.stamp.sec = int(stamp_ns) // 1_000_000_000
    header.stamp.nanosec = int(stamp_ns) % 1_000_000_000
    return header


def camera_info(
    width: int,
    height: int,
    header: Header | None = None,
    K: np.ndarray | None = None,
    D: np.ndarray | None = None,
    P: np.ndarray | None = None,
    distortion_model: str = "",
) -> CameraInfo:
    """A ``sensor_msgs/CameraInfo``; without ``K`` the camera is uncalibrated (K all zeros).

    Args:
        K: ``(3, 3)`` intrinsics. D: distortion coefficients. P: ``(3, 4)`` projection (default
            ``[K | 0]``).
    """
    msg = CameraInfo()
    if header is not None:
        msg.header = copy_header(header)
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = str(distortion_model)
    if K is not None:
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        msg.k = K.reshape(-1).tolist()
        P = np.concatenate([K, np.zeros((3, 1))], axis=1) if P is None else np.asarray(P, np.float64)
        msg.p = P.reshape(-1).tolist()
        msg.r = np.eye(3).reshape(-1).tolist()
    if D is not None:
        msg.d = np.asarray(D, dtype=np.float64).reshape(-1).tolist()
    return msg


def pose_stamped(T: np.ndarray, header: Header) -> PoseStamped:
    """A ``geometry_msgs/PoseStamped`` of the rigid transform ``T`` ``(4, 4)`` (a camera's optical
    frame in ``header.frame_id``).

    Raises:
        DataError: ``T`` is not a rigid 4x4 transform.
    """
    (px, py, pz), (x, y, z, w) = pose_quaternion(T)
    msg = PoseStamped(header=header)
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z, q.x, q.y, q.z, q.w = px, py, pz, x, y, z, w
    return msg
