"""sensor_msgs <-> numpy (no cv_bridge).

Decoding of raw image buffers (encodings, row padding, byte order) is the same code the bag reader
uses: :func:`decode_pixels` here is the one place that maps an encoding to a numpy layout for the
ROS layer. Public edges follow corr's conventions: images ``(H, W, 3) uint8`` RGB, label maps
``(H, W)`` integer ids.

Supported encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16 and the aliases 8UC1 (= mono8) and
16UC1 (= mono16); ``is_bigendian`` and ``step`` (row padding) are honoured. Anything else raises
:class:`~corr_core.errors.UnknownEncodingError` naming the encoding.
"""

from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from corr_core.errors import DataError, ShapeMismatchError, UnknownEncodingError

# encoding -> (channels, itemsize in bytes)
LAYOUTS: dict[str, tuple[int, int]] = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "8UC1": (1, 1),
    "mono16": (1, 2),
    "16UC1": (1, 2),
}
LABEL_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1")


def decode_pixels(
    encoding: str, height: int, width: int, step: int, is_bigendian: bool | int, data: bytes | memoryview
) -> np.ndarray:
    """Turns a raw image buffer into an array in the encoding's own channel order.

    Args:
        encoding: one of :data:`LAYOUTS`.
        height, width: image size in pixels.
        step: bytes per row (>= ``width * channels * itemsize``; the rest of a row is padding).
        is_bigendian: byte order of 16-bit pixels.
        data: at least ``step * height`` bytes.

    Returns:
        ``(H, W, C)`` uint8 for 3/4-channel encodings, ``(H, W)`` uint8 for mono8/8UC1,
        ``(H, W)`` uint16 (native byte order) for mono16/16UC1. The array may share memory with
        ``data`` (read-only).

    Raises:
        UnknownEncodingError: for an encoding not in :data:`LAYOUTS`.
        DataError: if ``step`` or the buffer length do not fit the size.
    """
    layout = LAYOUTS.get(encoding)
    if layout is None:
        raise UnknownEncodingError(
            f"unknown image encoding {encoding!r}; supported: {', '.join(sorted(LAYOUTS))}"
        )
    channels, itemsize = layout
    height, width, step = int(height), int(width), int(step)
    row_bytes = width * channels * itemsize
    if height <= 0 or width <= 0:
        raise DataError(f"{encoding} image has an empty size {width}x{height}")
    if step < row_bytes:
        raise DataError(f"{encoding} image {width}x{height}: step {step} < {row_bytes} bytes per row")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size < step * height:
        raise DataError(
            f"{encoding} image {width}x{height} (step {step}) needs {step * height} bytes, got {buf.size}"
        )
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]
    if itemsize == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width).astype(np.uint16)
        return pixels
    if channels == 1:
        return rows
    return rows.reshape(height, width, channels)


def image_to_array(msg: Image) -> np.ndarray:
    """A ``sensor_msgs/Image`` as an array in its encoding's channel order (see :func:`decode_pixels`)."""
    return decode_pixels(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)


def image_to_rgb(msg: Image) -> np.ndarray:
    """A ``sensor_msgs/Image`` as ``(H, W, 3) uint8`` RGB.

    BGR is swapped, alpha dropped, mono replicated to three channels (16-bit mono keeps its top
    8 bits).

    Raises:
        UnknownEncodingError: for an unsupported encoding. DataError: for a malformed buffer.
    """
    pixels = image_to_array(msg)
    enc = msg.encoding
    if enc == "rgb8":
        return np.ascontiguousarray(pixels)
    if enc == "bgr8":
        return np.ascontiguousarray(pixels[:, :, ::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(pixels[:, :, :3])
    if enc == "bgra8":
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    return np.repeat(pixels[:, :, None], 3, axis=2)


def image_to_labels(msg: Image) -> np.ndarray:
    """A label image (mono8/8UC1/mono16/16UC1) as an ``(H, W)`` uint8/uint16 id map (a copy).

    Raises:
        UnknownEncodingError: for any other encoding (colour images are not label maps).
        DataError: for a malformed buffer.
    """
    if msg.encoding not in LABEL_ENCODINGS:
        raise UnknownEncodingError(
            f"label images must be one of {', '.join(LABEL_ENCODINGS)}, got encoding {msg.encoding!r}"
        )
    return np.array(image_to_array(msg), copy=True)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (jpeg/png) as ``(H, W, 3) uint8`` RGB.

    Raises:
        DataError: if OpenCV cannot decode the bytes (the message names the format field).
    """
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if image is None:
        raise DataError(f"cannot decode compressed image (format {msg.format!r}, {buf.size} bytes)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


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
        encoding: one of :data:`LAYOUTS`.
        header: copied into the message (default: empty header).
        big_endian: write 16-bit pixels big-endian.
        row_padding: extra bytes at the end of each row.

    Raises:
        UnknownEncodingError: for an unsupported encoding.
        DataError: if the array does not fit the encoding.
    """
    layout = LAYOUTS.get(encoding)
    if layout is None:
        raise UnknownEncodingError(
            f"unknown image encoding {encoding!r}; supported: {', '.join(sorted(LAYOUTS))}"
        )
    channels, itemsize = layout
    array = np.asarray(array)
    want = np.uint16 if itemsize == 2 else np.uint8
    shape_ok = array.ndim == 2 if channels == 1 else (array.ndim == 3 and array.shape[2] == channels)
    if not shape_ok or array.dtype != want:
        want_shape = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise DataError(
            f"encoding {encoding!r} needs a {want_shape} {np.dtype(want)} array, "
            f"got shape {array.shape} dtype {array.dtype}"
        )
    height, width = array.shape[:2]
    if itemsize == 2:
        array = array.astype(">u2" if big_endian else "<u2", copy=False)
    rows = np.ascontiguousarray(array).view(np.uint8).reshape(height, width * channels * itemsize)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((height, int(row_padding)), np.uint8)], axis=1)
    msg = Image()
    if header is not None:
        msg.header = copy_header(header)
    msg.height, msg.width = int(height), int(width)
    msg.encoding = encoding
    msg.is_bigendian = int(bool(big_endian) and itemsize == 2)
    msg.step = int(rows.shape[1])
    msg.data = rows.tobytes()
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
