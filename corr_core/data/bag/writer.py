"""Writing rosbag2 folders (mcap or sqlite3) with ``rosbags``: :class:`BagWriter`."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from corr_core.data.bag.messages import (
    CAMERA_INFO_TYPE,
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    POSE_TYPE,
    TYPESTORE,
    encode_camera_info,
    encode_compressed,
    encode_image,
    encode_pose,
)
from corr_core.errors import ConfigError, DataError

_STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
#: Storage formats :class:`BagWriter` writes.
STORAGES = tuple(_STORAGES)


class BagWriter:
    """Writes a new rosbag2 folder; one connection per topic, created on its first message.

    Use as a context manager; the bag (with ``metadata.yaml``) is complete once it is closed::

        with BagWriter(tmp / "bag") as bag:
            bag.add_image("/cam0/image_raw", stamp_ns, "cam0", rgb)

    Args:
        path: the bag folder to create; it must not exist.
        storage: ``"mcap"`` (default) or ``"sqlite3"``.

    Raises:
        DataError: if ``path`` exists. ConfigError: for an unknown storage.
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        self.path = Path(path)
        if storage not in _STORAGES:
            raise ConfigError(f"bag storage must be one of {sorted(_STORAGES)}, got {storage!r}")
        if self.path.exists():
            raise DataError(f"bag folder {self.path} exists already; corr does not overwrite bags")
        self.storage = storage
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=_STORAGES[storage])
        try:
            self._writer.open()
        except WriterError as exc:
            raise DataError(f"cannot create bag {self.path}: {exc}") from exc
        self._connections: dict[str, Any] = {}
        self._closed = False

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Finishes the bag (writes the index and ``metadata.yaml``); safe to call twice."""
        if not self._closed:
            self._closed = True
            self._writer.close()

    def connect(self, topic: str, msgtype: str) -> Any:
        """The connection for ``topic`` (created on first use).

        Raises:
            DataError: ``msgtype`` is not a ROS 2 Jazzy type, or the topic already has another type.
        """
        conn = self._connections.get(topic)
        if conn is None:
            if msgtype not in TYPESTORE.types:
                raise DataError(f"cannot record {topic}: {msgtype} is not a ROS 2 Jazzy message type")
            conn = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise DataError(
                f"topic {topic} in {self.path} already carries {conn.msgtype}, cannot add {msgtype}"
            )
        return conn

    def add_raw(self, topic: str, msgtype: str, stamp_ns: int, data: bytes) -> None:
        """Writes an already CDR-serialised message (what a raw rclpy subscription receives)."""
        if self._closed:
            raise DataError(f"bag {self.path} is closed")
        self._writer.write(self.connect(topic, msgtype), int(stamp_ns), bytes(data))

    def add_message(self, topic: str, msgtype: str, stamp_ns: int, msg: Any) -> None:
        """Writes any message of the Jazzy typestore (``TYPESTORE.types[msgtype](...)``).

        Args:
            topic: topic name, e.g. ``"/cam0/image_raw"``.
            msgtype: e.g. ``"sensor_msgs/msg/Image"``.
            stamp_ns: the bag's receive time for the message, in nanoseconds.
            msg: the message object.
        """
        if self._closed:
            raise DataError(f"bag {self.path} is closed")
        conn = self.connect(topic, msgtype)
        self._writer.write(conn, int(stamp_ns), TYPESTORE.serialize_cdr(msg, msgtype))

    def add_image(
        self,
        topic: str,
        stamp_ns: int,
        frame_id: str,
        image: np.ndarray,
        encoding: str | None = None,
        *,
        big_endian: bool = False,
        row_padding: int = 0,
    ) -> None:
        """Writes a ``sensor_msgs/msg/Image``; see :func:`encode_image` for the arguments.

        ``(H, W, 3)`` uint8 is written as rgb8, ``(H, W)`` uint8 as mono8, ``(H, W)`` uint16 as
        mono16 unless ``encoding`` says otherwise (bgr8, rgba8, bgra8, 8UC1, 16UC1); the array is
        taken to be in that encoding's channel order.
        """
        msg = encode_image(
            image, stamp_ns, frame_id, encoding, big_endian=big_endian, row_padding=row_padding
        )
        self.add_message(topic, IMAGE_TYPE, stamp_ns, msg)

    def add_compressed_image(
        self, topic: str, stamp_ns: int, frame_id: str, image_rgb: np.ndarray, fmt: str = "jpeg"
    ) -> None:
        """Writes a ``sensor_msgs/msg/CompressedImage`` (jpeg or png) of an RGB or mono image."""
        msg = encode_compressed(image_rgb, stamp_ns, frame_id, fmt)
        self.add_message(topic, COMPRESSED_TYPE, stamp_ns, msg)

    def add_camera_info(
        self,
        topic: str,
        stamp_ns: int,
        frame_id: str,
        width: int,
        height: int,
        K: np.ndarray,
        D: np.ndarray | None = None,
        P: np.ndarray | None = None,
    ) -> None:
        """Writes a ``sensor_msgs/msg/CameraInfo``; see :func:`encode_camera_info`."""
        msg = encode_camera_info(stamp_ns, frame_id, width, height, K, D, P)
        self.add_message(topic, CAMERA_INFO_TYPE, stamp_ns, msg)

    def add_pose(self, topic: str, stamp_ns: int, frame_id: str, T: np.ndarray) -> None:
        """Writes a ``geometry_msgs/msg/PoseStamped`` of the rigid transform ``T`` in ``frame_id``
        (a moving camera's optical frame, for ``corr_node``'s camera rig)."""
        self.add_message(topic, POSE_TYPE, stamp_ns, encode_pose(T, stamp_ns, frame_id))
