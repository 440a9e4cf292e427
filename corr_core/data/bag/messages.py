"""ROS 2 Jazzy message objects (``rosbags`` typestore) for bags: headers, images, camera info,
camera poses.

The pixel maths is :mod:`corr_core.data.image_codec`'s; this module puts its fields into
``rosbags`` message classes (what :class:`~corr_core.data.bag.writer.BagWriter` serialises) and
reads ``sensor_msgs/msg/CameraInfo`` back into numpy (:class:`CameraCalibration`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_typestore

from corr_core.data.image_codec import compress_image, encode_pixels
from corr_core.errors import ConfigError, ShapeMismatchError
from corr_core.geometry import pose_matrix, pose_quaternion

#: The message definitions used for every bag corr writes and reads (ROS 2 Jazzy).
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POSE_TYPE = "geometry_msgs/msg/PoseStamped"


def _stamp(stamp_ns: int) -> Any:
    """``builtin_interfaces/msg/Time`` for a stamp in nanoseconds (must be >= 0)."""
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        raise ConfigError(f"stamp must be >= 0 ns, got {stamp_ns}")
    time_cls = TYPESTORE.types["builtin_interfaces/msg/Time"]
    return time_cls(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def make_header(stamp_ns: int, frame_id: str) -> Any:
    """A ``std_msgs/msg/Header`` with the given stamp (ns) and frame id."""
    header_cls = TYPESTORE.types["std_msgs/msg/Header"]
    return header_cls(stamp=_stamp(stamp_ns), frame_id=str(frame_id))


def header_stamp_ns(header: Any) -> int:
    """The stamp of a ``std_msgs/msg/Header`` in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def encode_image(
    image: np.ndarray,
    stamp_ns: int,
    frame_id: str,
    encoding: str | None = None,
    *,
    big_endian: bool = False,
    row_padding: int = 0,
) -> Any:
    """Builds a ``sensor_msgs/msg/Image`` (rosbags) from a numpy image.

    Args:
        image: the pixels in the channel order of ``encoding`` (see
            :func:`~corr_core.data.image_codec.encode_pixels`).
        stamp_ns: header stamp in nanoseconds.
        frame_id: header frame id.
        encoding: one of rgb8, bgr8, rgba8, bgra8, mono8, 8UC1, mono16, 16UC1; chosen from the
            array's shape and dtype when None (rgb8, rgba8, mono8 or mono16).
        big_endian: store 16-bit pixels big-endian (``is_bigendian = 1``).
        row_padding: extra bytes at the end of every row (``step > width * pixel size``).

    Raises:
        DataError: if the array does not fit the encoding.
        UnknownEncodingError: if the encoding is not one listed above.
    """
    fields = encode_pixels(image, encoding, big_endian=big_endian, row_padding=row_padding)
    image_cls = TYPESTORE.types[IMAGE_TYPE]
    return image_cls(
        header=make_header(stamp_ns, frame_id),
        height=fields.height,
        width=fields.width,
        encoding=fields.encoding,
        is_bigendian=fields.is_bigendian,
        step=fields.step,
        data=fields.data,
    )


def encode_compressed(image_rgb: np.ndarray, stamp_ns: int, frame_id: str, fmt: str = "jpeg") -> Any:
    """Builds a ``sensor_msgs/msg/CompressedImage`` (jpeg or png) from an RGB or mono image.

    Args:
        image_rgb: ``(H, W, 3)`` uint8 RGB or ``(H, W)`` uint8 mono (png also ``(H, W)`` uint16).
        stamp_ns: header stamp in nanoseconds.
        frame_id: header frame id.
        fmt: ``"jpeg"`` or ``"png"``.

    Raises:
        ConfigError: for another format. DataError: if the image cannot be encoded.
    """
    fmt_name, data = compress_image(image_rgb, fmt)
    compressed_cls = TYPESTORE.types[COMPRESSED_TYPE]
    return compressed_cls(header=make_header(stamp_ns, frame_id), format=fmt_name, data=data)


def encode_camera_info(
    stamp_ns: int,
    frame_id: str,
    width: int,
    height: int,
    K: np.ndarray,
    D: np.ndarray | None = None,
    P: np.ndarray | None = None,
) -> Any:
    """Builds a ``sensor_msgs/msg/CameraInfo`` (plumb_bob model, identity rectification).

    Args:
        K: ``(3, 3)`` intrinsic matrix.
        D: distortion coefficients (default five zeros).
        P: ``(3, 4)`` projection matrix (default ``[K | 0]``).

    Raises:
        ShapeMismatchError: if K or P have the wrong shape.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ShapeMismatchError(f"camera info K must be (3, 3), got {K.shape}")
    D = np.zeros(5) if D is None else np.asarray(D, dtype=np.float64).reshape(-1)
    P = np.concatenate([K, np.zeros((3, 1))], axis=1) if P is None else np.asarray(P, dtype=np.float64)
    if P.shape != (3, 4):
        raise ShapeMismatchError(f"camera info P must be (3, 4), got {P.shape}")
    roi_cls = TYPESTORE.types["sensor_msgs/msg/RegionOfInterest"]
    info_cls = TYPESTORE.types[CAMERA_INFO_TYPE]
    return info_cls(
        header=make_header(stamp_ns, frame_id),
        height=int(height),
        width=int(width),
        distortion_model="plumb_bob" if D.size in (4, 5) else ("rational_polynomial" if D.size == 8 else ""),
        d=D,
        k=K.reshape(-1),
        r=np.eye(3).reshape(-1),
        p=P.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=roi_cls(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


@dataclass(frozen=True)
class CameraCalibration:
    """The useful part of a ``sensor_msgs/msg/CameraInfo``, as numpy arrays.

    Attributes:
        width, height: image size in pixels.
        K: ``(3, 3)`` float64 intrinsics. D: ``(n,)`` float64 distortion coefficients.
        P: ``(3, 4)`` float64 projection matrix. distortion_model: e.g. ``"plumb_bob"``.
        frame_id: the header frame. stamp_ns: the header stamp (ns).
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    P: np.ndarray
    distortion_model: str
    frame_id: str
    stamp_ns: int


def decode_camera_info(msg: Any) -> CameraCalibration:
    """Converts a deserialised ``sensor_msgs/msg/CameraInfo`` into a :class:`CameraCalibration`."""
    return CameraCalibration(
        width=int(msg.width),
        height=int(msg.height),
        K=np.asarray(msg.k, dtype=np.float64).reshape(3, 3).copy(),
        D=np.asarray(msg.d, dtype=np.float64).copy(),
        P=np.asarray(msg.p, dtype=np.float64).reshape(3, 4).copy(),
        distortion_model=str(msg.distortion_model),
        frame_id=str(msg.header.frame_id),
        stamp_ns=header_stamp_ns(msg.header),
    )


@dataclass(frozen=True)
class StampedPose:
    """A ``geometry_msgs/msg/PoseStamped`` as numpy: ``T`` ``(4, 4)`` of the pose (a camera's
    optical frame) in ``frame_id`` at ``stamp_ns``."""

    T: np.ndarray
    frame_id: str
    stamp_ns: int


def encode_pose(T: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """A ``geometry_msgs/msg/PoseStamped`` (rosbags) of the rigid transform ``T`` in ``frame_id``.

    Raises:
        DataError: ``T`` is not a rigid 4x4 transform.
    """
    (px, py, pz), (x, y, z, w) = pose_quaternion(T)
    types = TYPESTORE.types
    pose = types["geometry_msgs/msg/Pose"](position=types["geometry_msgs/msg/Point"](x=px, y=py, z=pz),
                                           orientation=types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w))
    return types[POSE_TYPE](header=make_header(stamp_ns, frame_id), pose=pose)


def decode_pose(msg: Any, topic: str = "pose") -> StampedPose:
    """A deserialised ``geometry_msgs/msg/PoseStamped`` as a :class:`StampedPose`.

    Raises:
        DataError: a non-finite pose or an unset (zero) orientation, named with ``topic``.
    """
    p, q = msg.pose.position, msg.pose.orientation
    return StampedPose(pose_matrix((p.x, p.y, p.z), (q.x, q.y, q.z, q.w), topic), str(msg.header.frame_id),
                       header_stamp_ns(msg.header))
