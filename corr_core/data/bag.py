"""rosbag2 files (mcap or sqlite3) read and written with ``rosbags``, never with rclpy.

Writing: :class:`BagWriter` turns numpy images and camera calibrations into ``sensor_msgs``
messages (ROS 2 Jazzy definitions, CDR serialisation) in a new bag folder.

Reading: :func:`read_synced` yields time-synchronised multi-camera frames (one image per camera,
stamps within a slop, matched by :class:`corr_core.sync.ApproximateSynchronizer`), decoding
``sensor_msgs/msg/Image`` and ``sensor_msgs/msg/CompressedImage`` into numpy arrays;
:func:`bag_info` summarises a bag. Damaged bags raise :class:`CorruptBagError` only after every
complete set read before the damage has been yielded.
"""

from __future__ import annotations

import io
import logging
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.rosbag2.storage_mcap import decompress as mcap_decompress
from rosbags.typesys import Stores, get_typestore
from ruamel.yaml import YAML

from corr_core.errors import (
    ConfigError,
    CorruptBagError,
    DataError,
    MissingCameraError,
    ShapeMismatchError,
    UnknownEncodingError,
)
from corr_core.sync import ApproximateSynchronizer

log = logging.getLogger(__name__)

#: The message definitions used for every bag corr writes and reads (ROS 2 Jazzy).
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"

_STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
STORAGES = tuple(_STORAGES)

# encoding -> (channels, dtype) of the raw pixel layout.
_LAYOUTS: dict[str, tuple[int, np.dtype]] = {
    "rgb8": (3, np.dtype(np.uint8)),
    "bgr8": (3, np.dtype(np.uint8)),
    "rgba8": (4, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "8UC1": (1, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "16UC1": (1, np.dtype(np.uint16)),
}


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


def _default_encoding(image: np.ndarray) -> str:
    if image.ndim == 2 and image.dtype == np.uint8:
        return "mono8"
    if image.ndim == 2 and image.dtype == np.uint16:
        return "mono16"
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return "rgb8"
    if image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8:
        return "rgba8"
    raise DataError(
        f"cannot choose an image encoding for an array of shape {image.shape} and dtype {image.dtype}; "
        "expected (H, W, 3|4) uint8, (H, W) uint8 or (H, W) uint16"
    )


def encode_image(
    image: np.ndarray,
    stamp_ns: int,
    frame_id: str,
    encoding: str | None = None,
    *,
    big_endian: bool = False,
    row_padding: int = 0,
) -> Any:
    """Builds a ``sensor_msgs/msg/Image`` from a numpy image.

    Args:
        image: the pixels in the channel order of ``encoding``: ``(H, W, 3)`` uint8 for
            rgb8/bgr8, ``(H, W, 4)`` uint8 for rgba8/bgra8, ``(H, W)`` uint8 for mono8/8UC1,
            ``(H, W)`` uint16 for mono16/16UC1.
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
    image = np.asarray(image)
    enc = encoding or _default_encoding(image)
    if enc not in _LAYOUTS:
        raise UnknownEncodingError(f"cannot write image encoding {enc!r}; supported: {sorted(_LAYOUTS)}")
    channels, dtype = _LAYOUTS[enc]
    want_ndim = 2 if channels == 1 else 3
    if image.ndim != want_ndim or (channels > 1 and image.shape[2] != channels) or image.dtype != dtype:
        raise DataError(
            f"encoding {enc!r} needs an array of {'(H, W)' if channels == 1 else f'(H, W, {channels})'} "
            f"{dtype}, got shape {image.shape} dtype {image.dtype}"
        )
    if row_padding < 0:
        raise ConfigError(f"row_padding must be >= 0, got {row_padding}")
    height, width = image.shape[:2]
    pixels = image.astype(dtype.newbyteorder(">" if big_endian else "<"), copy=False)
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((height, row_padding), np.uint8)], axis=1)
    image_cls = TYPESTORE.types[IMAGE_TYPE]
    return image_cls(
        header=make_header(stamp_ns, frame_id),
        height=height,
        width=width,
        encoding=enc,
        is_bigendian=int(big_endian and dtype.itemsize > 1),
        step=rows.shape[1],
        data=np.ascontiguousarray(rows).reshape(-1),
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
    fmt = fmt.lower()
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ConfigError(f"compressed image format must be 'jpeg' or 'png', got {fmt!r}")
    image = np.asarray(image_rgb)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim != 2:
        raise DataError(f"compressed image must be (H, W, 3) RGB or (H, W) mono, got shape {image.shape}")
    ok, buf = cv2.imencode(ext, image)
    if not ok:
        raise DataError(f"OpenCV could not encode a {image.shape} {image.dtype} image as {fmt}")
    compressed_cls = TYPESTORE.types[COMPRESSED_TYPE]
    return compressed_cls(
        header=make_header(stamp_ns, frame_id),
        format="jpeg" if ext == ".jpg" else "png",
        data=np.asarray(buf, dtype=np.uint8).reshape(-1),
    )


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


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------

_ALIASES = {"8UC1": "mono8", "16UC1": "mono16"}


def _where(topic: str | None) -> str:
    return f" on topic {topic}" if topic else ""


def decode_image(msg: Any, topic: str | None = None) -> np.ndarray:
    """Decodes a ``sensor_msgs/msg/Image`` into a numpy image.

    Args:
        msg: the deserialised message (fields height, width, encoding, is_bigendian, step, data).
        topic: the topic it came from, named in error messages.

    Returns:
        rgb8/bgr8/rgba8/bgra8: ``(H, W, 3)`` uint8 RGB (alpha dropped);
        mono8/8UC1: ``(H, W)`` uint8; mono16/16UC1: ``(H, W)`` uint16 (native byte order).

    Raises:
        UnknownEncodingError: for any other encoding (the message names it and the topic).
        DataError: if ``step`` or the data length does not fit height, width and encoding.
    """
    enc = str(msg.encoding)
    if enc not in _LAYOUTS:
        raise UnknownEncodingError(
            f"cannot decode image encoding {enc!r}{_where(topic)}; supported: {sorted(_LAYOUTS)}"
        )
    channels, dtype = _LAYOUTS[enc]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    data = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if step < row_bytes:
        raise DataError(
            f"image{_where(topic)}: step {step} is smaller than width {width} x {channels} channel(s) "
            f"x {dtype.itemsize} byte(s) = {row_bytes} for encoding {enc!r}"
        )
    if data.size != step * height:
        raise DataError(
            f"image{_where(topic)}: data holds {data.size} bytes, expected step {step} x height {height} "
            f"= {step * height} for a {width}x{height} {enc!r} image"
        )
    rows = data.reshape(height, step)[:, :row_bytes]
    order = ">" if (int(msg.is_bigendian) and dtype.itemsize > 1) else "<"
    pixels = np.ascontiguousarray(rows).view(dtype.newbyteorder(order))
    pixels = pixels.reshape((height, width) if channels == 1 else (height, width, channels))
    pixels = pixels.astype(dtype.newbyteorder("="), copy=True)
    if enc in ("bgr8", "bgra8"):
        pixels = pixels[..., 2::-1]
    elif enc == "rgba8":
        pixels = pixels[..., :3]
    return np.ascontiguousarray(pixels)


def decode_compressed(msg: Any, topic: str | None = None) -> np.ndarray:
    """Decodes a ``sensor_msgs/msg/CompressedImage`` (jpeg or png; also ``compressedDepth``).

    Args:
        msg: the deserialised message (fields format, data).
        topic: the topic it came from, named in error messages.

    Returns:
        ``(H, W, 3)`` uint8 RGB for colour images; ``(H, W)`` uint8 or uint16 for mono ones.

    Raises:
        UnknownEncodingError: if the format is neither jpeg nor png and OpenCV cannot decode it.
        DataError: if jpeg/png data cannot be decoded.
    """
    fmt = str(msg.format)
    buf = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if "compresseddepth" in fmt.lower():
        buf = buf[12:]  # image_transport's compressedDepth puts a 12-byte config header first
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if image is None:
        known = any(k in fmt.lower() for k in ("jpeg", "jpg", "png"))
        if not known:
            raise UnknownEncodingError(
                f"cannot decode compressed image format {fmt!r}{_where(topic)}; supported: jpeg, png"
            )
        raise DataError(
            f"compressed {fmt!r} image{_where(topic)}: {buf.size} bytes that OpenCV cannot decode"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
        if image.dtype != np.uint8:
            raise UnknownEncodingError(
                f"compressed colour image{_where(topic)} has dtype {image.dtype}; corr reads 8-bit colour"
            )
    return np.ascontiguousarray(image)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Makes any decoded image a 3-channel ``(H, W, 3)`` uint8 RGB image for the models.

    ``(H, W)`` uint8 and ``(H, W, 1)`` are repeated over three channels; ``(H, W)`` uint16 is first
    scaled linearly so that the image's maximum becomes 255; ``(H, W, 4)`` loses its alpha.

    Raises:
        DataError: for other shapes or dtypes.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        if image.dtype == np.uint16:
            peak = int(image.max()) if image.size else 0
            scaled = image.astype(np.float32) * (255.0 / peak) if peak else np.zeros(image.shape, np.float32)
            image = np.rint(scaled).astype(np.uint8)
        elif image.dtype != np.uint8:
            raise DataError(f"cannot convert a {image.dtype} mono image to RGB; expected uint8 or uint16")
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4) and image.dtype == np.uint8:
        return np.ascontiguousarray(image[..., :3])
    raise DataError(f"cannot convert an image of shape {image.shape} dtype {image.dtype} to RGB")


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


# --------------------------------------------------------------------------------------------
# Opening bags (and salvaging truncated mcap and sqlite3 files)
# --------------------------------------------------------------------------------------------

_MCAP_MAGIC = b"\x89MCAP0\r\n"


class _McapSalvage:
    """Reads an mcap file record by record from the start, without its (missing) index.

    Used when the summary/footer is gone (recording killed, copy cut short). Messages are
    produced in file order (sorted by log time within each chunk); at the first incomplete or
    inconsistent record :meth:`messages` raises :class:`CorruptBagError` saying where.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        self.size = path.stat().st_size
        self.schemas: dict[int, str] = {}
        self.channels: dict[int, tuple[str, str]] = {}  # id -> (topic, msgtype)

    def _fail(self, offset: int, what: str) -> CorruptBagError:
        return CorruptBagError(
            f"{self.path}: truncated or corrupt mcap ({self.reason}); {what} at byte {offset} of {self.size}"
        )

    def _records(self, bio: Any, end: int, base: int) -> Iterator[tuple[int, bytes]]:
        while bio.tell() < end:
            start = bio.tell()
            head = bio.read(9)
            if len(head) < 9:
                raise self._fail(base + start, "incomplete record header")
            op, length = struct.unpack("<BQ", head)
            if start + 9 + length > end:
                raise self._fail(base + start, f"record 0x{op:02x} of {length} bytes runs past the end")
            yield op, bio.read(length)

    def _parse(self, op: int, rec: bytes) -> tuple[int, int, bytes] | None:
        """Registers schemas/channels; returns (channel_id, log_time, data) for a message."""
        if op == 0x03:
            (sid,) = struct.unpack_from("<H", rec, 0)
            (n,) = struct.unpack_from("<I", rec, 2)
            self.schemas[sid] = rec[6 : 6 + n].decode()
        elif op == 0x04:
            cid, sid = struct.unpack_from("<HH", rec, 0)
            (n,) = struct.unpack_from("<I", rec, 4)
            topic = rec[8 : 8 + n].decode()
            self.channels[cid] = (topic, self.schemas.get(sid, ""))
        elif op == 0x05:
            cid, _seq, log_time, _pub = struct.unpack_from("<HIQQ", rec, 0)
            return cid, log_time, rec[22:]
        return None

    def messages(self) -> Iterator[tuple[int, int, bytes]]:
        """Yields ``(channel_id, log_time_ns, cdr_bytes)`` and raises at the damage (if any)."""
        with self.path.open("rb") as bio:
            if bio.read(8) != _MCAP_MAGIC:
                raise self._fail(0, "no mcap magic")
            for op, rec in self._records(bio, self.size, 0):
                if op in (0x02, 0x0F):  # footer / data end: the data section is complete
                    return
                offset = bio.tell() - len(rec) - 9
                try:
                    if op == 0x06:
                        yield from self._chunk(rec, offset)
                    else:
                        out = self._parse(op, rec)
                        if out is not None:
                            yield out
                except (struct.error, UnicodeDecodeError, ReaderError) as exc:
                    raise self._fail(offset, f"bad record 0x{op:02x} ({exc})") from exc
        raise self._fail(self.size, "file ends without a data-end record")

    def _chunk(self, rec: bytes, offset: int) -> Iterator[tuple[int, int, bytes]]:
        _t0, _t1, size, crc = struct.unpack_from("<QQQI", rec, 0)
        (n,) = struct.unpack_from("<I", rec, 28)
        compression = rec[32 : 32 + n].decode()
        pos = 32 + n
        (clen,) = struct.unpack_from("<Q", rec, pos)
        raw = mcap_decompress(rec[pos + 8 : pos + 8 + clen], compression, size, crc)
        msgs = []
        inner = io.BytesIO(raw)
        for op, sub in self._records(inner, len(raw), offset):
            out = self._parse(op, sub)
            if out is not None:
                msgs.append(out)
        msgs.sort(key=lambda m: m[1])
        yield from msgs


class _Sqlite3Salvage:
    """Reads a damaged rosbag2 sqlite3 file row by row, in recording order, up to the damage.

    A db3 file cut short (a copy interrupted, a disk filled) declares more pages than it has,
    so SQLite, and with it ``rosbags``, refuses to open it at all. Opened read-only and
    ``immutable`` (the file is never written) with ``writable_schema`` on, SQLite accepts the
    shorter file and reads every row whose pages survive; :meth:`messages` yields them in row
    order (the order they were recorded) and raises :class:`CorruptBagError` at the first row it
    cannot read. Same interface as :class:`_McapSalvage`.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        self.channels: dict[int, tuple[str, str]] = {}  # topic id -> (topic, msgtype)
        try:
            con = self._connect()
            try:
                rows = con.execute("SELECT id, name, type FROM topics").fetchall()
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise self._fail(f"its topic table is unreadable ({exc})") from exc
        self.channels = {int(i): (str(name), str(msgtype)) for i, name, msgtype in rows}

    def _fail(self, what: str) -> CorruptBagError:
        return CorruptBagError(f"{self.path}: truncated or corrupt sqlite3 bag ({self.reason}); {what}")

    def _connect(self) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
        con = sqlite3.connect(uri, uri=True)
        con.execute("PRAGMA writable_schema=ON")  # tolerate a file shorter than its header says
        return con

    def messages(self) -> Iterator[tuple[int, int, bytes]]:
        """Yields ``(topic_id, timestamp_ns, cdr_bytes)`` and raises at the damage (if any)."""
        con = self._connect()
        count, last_id = 0, None
        try:
            cursor = con.execute("SELECT id, topic_id, timestamp, data FROM messages ORDER BY id")
            while True:
                try:
                    row = cursor.fetchone()
                except sqlite3.Error as exc:
                    after = f"after row id {last_id}" if last_id is not None else "before the first row"
                    raise self._fail(f"{exc} {after} ({count} messages read)") from exc
                if row is None:
                    return
                last_id = int(row[0])
                count += 1
                yield int(row[1]), int(row[2]), bytes(row[3])
        finally:
            con.close()


def _salvage_reader(path: Path, reason: str) -> _McapSalvage | _Sqlite3Salvage:
    return _McapSalvage(path, reason) if path.suffix == ".mcap" else _Sqlite3Salvage(path, reason)


def _storage_files(path: Path) -> list[Path]:
    files = sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3"))
    return [f for f in files if f.is_file()]


def _check_metadata(path: Path) -> list[Path]:
    """Validates a bag folder's metadata.yaml; returns the storage files it lists."""
    meta = path / "metadata.yaml"
    if not meta.is_file():
        found = [f.name for f in _storage_files(path)]
        raise CorruptBagError(
            f"{path}: metadata.yaml is missing, so this is not a complete rosbag2 folder "
            f"(storage files here: {found or 'none'}; pass one of them directly to read it, "
            "or rebuild the metadata with `ros2 bag reindex`)"
        )
    try:
        info = YAML(typ="safe").load(meta.read_text())["rosbag2_bagfile_information"]
        names = [PurePath(str(p)).name for p in info["relative_file_paths"]]
        str(info["storage_identifier"])
    except Exception as exc:  # any YAML or key/type error means the file is garbled
        raise CorruptBagError(f"{meta}: garbled rosbag2 metadata ({type(exc).__name__}: {exc})") from exc
    return [path / n for n in names]


class _BagSource:
    """An open bag: its topics, and a stream of raw messages; storage failures become
    :class:`CorruptBagError`. Falls back to :class:`_McapSalvage` for mcap files without index and
    to :class:`_Sqlite3Salvage` for truncated sqlite3 files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise CorruptBagError(f"bag not found: {self.path}")
        if self.path.is_dir():
            files = _check_metadata(self.path)
        elif self.path.suffix in (".mcap", ".db3"):
            files = [self.path]
        else:
            raise CorruptBagError(f"{self.path}: not a rosbag2 folder, .mcap or .db3 file")
        self.storage = "mcap" if all(f.suffix == ".mcap" for f in files) else "sqlite3"
        self._reader: Reader | None = None
        self._salvage: list[_McapSalvage | _Sqlite3Salvage] = []
        reader = Reader(self.path)
        try:
            reader.open()
        except Exception as exc:  # rosbags raises ReaderError, apsw and OS errors alike
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ReaderError) else str(exc)
            if not all(f.is_file() for f in files):
                missing = [f.name for f in files if not f.is_file()]
                raise CorruptBagError(f"{self.path}: unreadable rosbag2 bag ({reason}; missing: {missing})") from exc
            self._salvage = [_salvage_reader(f, reason) for f in files]
            self._scan_salvage()
            if self.damage and not any(self.counts.values()):
                raise CorruptBagError(f"{self.damage}; no message in it is readable") from exc
            log.warning("%s: %s; reading it sequentially up to the damage", self.path, reason)
        else:
            self._reader = reader
            self.topics = {c.topic: c.msgtype for c in reader.connections}
            self.counts: dict[str, int] = {}
            for c in reader.connections:
                self.counts[c.topic] = self.counts.get(c.topic, 0) + c.msgcount
            self.start_ns, self.end_ns = (
                (reader.start_time, reader.end_time) if reader.message_count else (0, 0)
            )
            self.damage: str | None = None

    @property
    def salvaged(self) -> bool:
        """True when the bag's index is damaged and it is read sequentially up to the damage."""
        return bool(self._salvage)

    def _scan_salvage(self) -> None:
        """First pass over a damaged bag: topics, types, and counts up to the damage."""
        self.topics, self.counts, self.damage = {}, {}, None
        self.start_ns, self.end_ns = 2**63 - 1, 0
        for part in self._salvage:
            try:
                for cid, t, _ in part.messages():
                    topic = part.channels[cid][0]
                    self.counts[topic] = self.counts.get(topic, 0) + 1
                    self.start_ns, self.end_ns = min(self.start_ns, t), max(self.end_ns, t + 1)
            except CorruptBagError as exc:
                self.damage = str(exc)
            finally:
                for topic, msgtype in part.channels.values():
                    self.topics.setdefault(topic, msgtype)
                    self.counts.setdefault(topic, 0)
            if self.damage:
                break
        if not self.counts or not any(self.counts.values()):
            self.start_ns = self.end_ns = 0

    def messages(self, topics: set[str]) -> Iterator[tuple[str, str, int, bytes]]:
        """Yields ``(topic, msgtype, log_time_ns, cdr_bytes)`` for the given topics.

        Raises:
            CorruptBagError: where the storage turns out to be damaged, after all earlier messages.
        """
        if self._salvage:
            for part in self._salvage:
                for cid, t, data in part.messages():
                    topic, msgtype = part.channels.get(cid, ("", ""))
                    if topic in topics:
                        yield topic, msgtype, t, data
            return
        assert self._reader is not None
        conns = [c for c in self._reader.connections if c.topic in topics]
        if not conns:
            return
        it = self._reader.messages(connections=conns)
        count = 0
        while True:
            try:
                conn, t, data = next(it)
            except StopIteration:
                return
            except Exception as exc:  # storage-level failure in the middle of the bag
                raise CorruptBagError(
                    f"{self.path}: corrupt rosbag2 storage after {count} messages "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
            count += 1
            yield conn.topic, conn.msgtype, t, data

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def bag_info(path: str | Path) -> dict[str, Any]:
    """Summarises a bag.

    Returns:
        ``{"path", "storage", "topics": {topic: {"type", "count"}}, "message_count",
        "start_ns", "end_ns", "duration_s", "damage"}``; ``damage`` is None for a sound bag and
        describes the damage for a truncated bag (counts then cover the readable part).

    Raises:
        CorruptBagError: if the path is missing or the bag cannot be opened at all.
    """
    src = _BagSource(path)
    try:
        topics = {t: {"type": src.topics[t], "count": int(src.counts.get(t, 0))} for t in sorted(src.topics)}
        return {
            "path": str(src.path),
            "storage": src.storage,
            "topics": topics,
            "message_count": sum(v["count"] for v in topics.values()),
            "start_ns": int(src.start_ns),
            "end_ns": int(src.end_ns),
            "duration_s": max(0, int(src.end_ns) - int(src.start_ns)) / 1e9,
            "damage": src.damage,
        }
    finally:
        src.close()


# --------------------------------------------------------------------------------------------
# Synchronised reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameHeader:
    """Where one camera's image in a set came from: header stamp (ns), frame id and topic."""

    stamp_ns: int
    frame_id: str
    topic: str


@dataclass
class SyncedFrames:
    """One image per camera, with stamps within the slop of each other.

    Attributes:
        stamp_ns: the newest stamp in the set (ns): header stamps, or receive times when the
            reader synchronises on those.
        images: camera -> ``(H, W, 3)`` uint8 RGB, ``(H, W)`` uint8 or ``(H, W)`` uint16
            (see :func:`decode_image`; :func:`to_rgb` makes any of them RGB).
        headers: camera -> :class:`FrameHeader`.
        camera_info: camera -> the latest :class:`CameraCalibration` received before the set, for
            cameras whose camera_info topic was given and has been seen.
    """

    stamp_ns: int
    images: dict[str, np.ndarray]
    headers: dict[str, FrameHeader]
    camera_info: dict[str, CameraCalibration] = field(default_factory=dict)


@dataclass
class SyncStats:
    """What :class:`BagReader` did with the messages of every camera.

    Attributes:
        messages: camera -> image messages read.
        dropped: camera -> image messages that ended up in no set (no partner within the slop,
            queue overflow, out-of-order stamps, or left over when the bag ended).
        sets: complete sets yielded.
        first_stamp_ns, last_stamp_ns: camera -> first/last image header stamp seen.
    """

    messages: dict[str, int]
    dropped: dict[str, int]
    sets: int = 0
    first_stamp_ns: dict[str, int] = field(default_factory=dict)
    last_stamp_ns: dict[str, int] = field(default_factory=dict)


def _split_topics(
    topics: dict[str, str], camera_info: dict[str, str] | None
) -> tuple[dict[str, str], dict[str, str]]:
    images: dict[str, str] = {}
    infos: dict[str, str] = dict(camera_info or {})
    for key, topic in topics.items():
        if key.endswith("/camera_info"):
            infos[key[: -len("/camera_info")]] = topic
        else:
            images[key] = topic
    if not images:
        raise ConfigError("no camera image topics given (topics maps camera name -> image topic)")
    unknown = sorted(set(infos) - set(images))
    if unknown:
        raise ConfigError(f"camera_info given for unknown camera(s) {unknown}; cameras: {sorted(images)}")
    used = list(images.values()) + list(infos.values())
    dupes = sorted({t for t in used if used.count(t) > 1})
    if dupes:
        raise ConfigError(f"topic(s) {dupes} assigned to more than one camera/role")
    return images, infos


class BagReader:
    """Iterates time-synchronised multi-camera frames from a rosbag2 bag (mcap or sqlite3).

    The bag is opened and the topics are checked on construction; iterating yields
    :class:`SyncedFrames` in time order. ``stats`` (a :class:`SyncStats`) is updated as it goes and
    is final once iteration ends. A bag that is damaged part-way yields every complete set read
    before the damage, then raises :class:`CorruptBagError`.

    Args:
        path: a bag folder (with metadata.yaml), or one ``.mcap``/``.db3`` file.
        topics: camera name -> image topic (``sensor_msgs/msg/Image`` or ``CompressedImage``).
            A key ``"<cam>/camera_info"`` names that camera's ``CameraInfo`` topic.
        slop_s: the largest allowed difference between header stamps in one set, in seconds.
        queue_size: pending messages kept per camera by the synchroniser.
        camera_info: camera name -> CameraInfo topic (alternative to the key style above).
        use_receive_time: synchronise on the bag's receive (log) times instead of the header
            stamps, for drivers that leave header stamps at zero.

    Raises:
        CorruptBagError: missing path, missing/garbled metadata, unreadable storage.
        MissingCameraError: a topic is not in the bag (the message lists the topics there are).
        DataError: a topic has the wrong message type. ConfigError: bad arguments.
    """

    def __init__(
        self,
        path: str | Path,
        topics: dict[str, str],
        slop_s: float = 0.02,
        queue_size: int = 10,
        camera_info: dict[str, str] | None = None,
        use_receive_time: bool = False,
    ) -> None:
        self.use_receive_time = bool(use_receive_time)
        self.image_topics, self.info_topics = _split_topics(dict(topics), camera_info)
        if not slop_s >= 0:
            raise ConfigError(f"slop must be >= 0 s, got {slop_s}")
        self.slop_ns = int(round(slop_s * 1e9))
        self.queue_size = int(queue_size)
        self._sync: ApproximateSynchronizer[Any] = ApproximateSynchronizer(
            list(self.image_topics), self.slop_ns, self.queue_size
        )
        self._source = _BagSource(path)
        self.path = self._source.path
        try:
            self._check_topics()
        except BaseException:
            self._source.close()
            raise
        cams = list(self.image_topics)
        self.stats = SyncStats(messages={c: 0 for c in cams}, dropped={c: 0 for c in cams})
        self._gen = self._run()

    def _check_topics(self) -> None:
        have = self._source.topics
        for role, mapping, types in (
            ("image", self.image_topics, (IMAGE_TYPE, COMPRESSED_TYPE)),
            ("camera_info", self.info_topics, (CAMERA_INFO_TYPE,)),
        ):
            for cam, topic in mapping.items():
                if topic not in have:
                    raise MissingCameraError(
                        f"{role} topic {topic} for camera {cam!r} is not in bag {self.path}; "
                        f"available topics: {sorted(have)}"
                    )
                if have[topic] not in types:
                    raise DataError(
                        f"{role} topic {topic} for camera {cam!r} in {self.path} carries {have[topic]}, "
                        f"expected {' or '.join(types)}"
                    )

    def __iter__(self) -> BagReader:
        return self

    def __next__(self) -> SyncedFrames:
        return next(self._gen)

    def close(self) -> None:
        """Releases the bag (also done when iteration ends)."""
        self._gen.close()
        self._source.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> Iterator[SyncedFrames]:
        cam_of = {t: c for c, t in self.image_topics.items()}
        info_cam = {t: c for c, t in self.info_topics.items()}
        latest_info: dict[str, CameraCalibration] = {}
        try:
            for topic, msgtype, log_time, data in self._source.messages(set(cam_of) | set(info_cam)):
                msg = self._deserialize(data, msgtype, topic)
                if topic in info_cam:
                    latest_info[info_cam[topic]] = decode_camera_info(msg)
                    continue
                cam = cam_of[topic]
                stamp = int(log_time) if self.use_receive_time else header_stamp_ns(msg.header)
                self.stats.messages[cam] += 1
                self.stats.first_stamp_ns.setdefault(cam, stamp)
                self.stats.last_stamp_ns[cam] = stamp
                for synced in self._sync.add(cam, stamp, (topic, msgtype, msg)):
                    frames = self._frames(synced, latest_info)
                    self.stats.sets += 1
                    self._update_dropped()
                    yield frames
        finally:
            self._update_dropped(final=True)
            self._source.close()
        self._warn_dropped()

    def _update_dropped(self, final: bool = False) -> None:
        pending = self._sync.pending() if final else {}
        for cam in self.image_topics:
            self.stats.dropped[cam] = self._sync.dropped[cam] + pending.get(cam, 0)

    def _warn_dropped(self) -> None:
        lost = {c: n for c, n in self.stats.dropped.items() if n}
        if lost:
            last = {c: self.stats.last_stamp_ns.get(c) for c in self.image_topics}
            log.warning(
                "%s: %d synchronised sets; image messages in no set per camera: %s (last stamps: %s)",
                self.path,
                self.stats.sets,
                lost,
                last,
            )

    def _deserialize(self, data: bytes, msgtype: str, topic: str) -> Any:
        try:
            return TYPESTORE.deserialize_cdr(data, msgtype)
        except Exception as exc:  # rosbags raises assorted errors for malformed CDR
            raise CorruptBagError(
                f"{self.path}: cannot deserialise a {msgtype} message on topic {topic} ({exc})"
            ) from exc

    def _frames(self, synced: Any, latest_info: dict[str, CameraCalibration]) -> SyncedFrames:
        images: dict[str, np.ndarray] = {}
        headers: dict[str, FrameHeader] = {}
        for cam in self.image_topics:
            topic, msgtype, msg = synced.items[cam]
            if msgtype == IMAGE_TYPE:
                images[cam] = decode_image(msg, topic)
            else:
                images[cam] = decode_compressed(msg, topic)
            headers[cam] = FrameHeader(header_stamp_ns(msg.header), str(msg.header.frame_id), topic)
        infos = {c: latest_info[c] for c in self.image_topics if c in latest_info}
        return SyncedFrames(int(synced.stamp_ns), images, headers, infos)


def read_synced(
    path: str | Path,
    topics: dict[str, str],
    slop_s: float = 0.02,
    queue_size: int = 10,
    camera_info: dict[str, str] | None = None,
    use_receive_time: bool = False,
) -> BagReader:
    """Opens a bag for synchronised reading; iterate the result for :class:`SyncedFrames`.

    See :class:`BagReader` for the arguments and errors; the returned reader's ``stats`` reports
    messages read and dropped per camera.
    """
    return BagReader(
        path,
        topics,
        slop_s=slop_s,
        queue_size=queue_size,
        camera_info=camera_info,
        use_receive_time=use_receive_time,
    )
