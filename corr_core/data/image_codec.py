"""The ``sensor_msgs`` pixel codec: ``Image`` / ``CompressedImage`` fields <-> numpy, without ROS.

One implementation for every place a camera image is a message: the rosbag2 reader and writer
(:mod:`corr_core.data.bag`, ``rosbags`` message objects) and the live ROS side
(``corr_ros.conversions``, rclpy message objects) read and write the same fields, so a live topic
and a recorded bag decode identically. Decoding takes any object with the message's fields (duck
typing); encoding returns the fields (:class:`ImageFields`), which the caller puts into its own
message class. This module imports neither ROS nor ``rosbags``.

Encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16 and the aliases 8UC1 (= mono8) and 16UC1
(= mono16), with row padding (``step > width * pixel size``) and either byte order
(``is_bigendian``). Compressed images: jpeg and png (also image_transport's ``compressedDepth``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from corr_core.errors import ConfigError, DataError, UnknownEncodingError

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

#: Encodings :func:`decode_image` and :func:`encode_pixels` accept.
ENCODINGS = tuple(_LAYOUTS)
#: The single-channel encodings, the ones a label image may use.
LABEL_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1")


@dataclass(frozen=True)
class ImageFields:
    """The pixel fields of a ``sensor_msgs/msg/Image`` (everything but the header).

    Attributes:
        height, width: image size in pixels.
        encoding: one of :data:`ENCODINGS`.
        is_bigendian: 1 when 16-bit pixels are stored big-endian, else 0.
        step: bytes per row (``width * pixel size`` plus any row padding).
        data: ``(height * step,)`` uint8, the rows one after the other.
    """

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


def _where(topic: str | None) -> str:
    return f" on topic {topic}" if topic else ""


def default_encoding(image: np.ndarray) -> str:
    """The encoding :func:`encode_pixels` picks for an array: rgb8, rgba8, mono8 or mono16.

    Raises:
        DataError: for an array of another shape or dtype.
    """
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


def encode_pixels(
    image: np.ndarray, encoding: str | None = None, *, big_endian: bool = False, row_padding: int = 0
) -> ImageFields:
    """The ``sensor_msgs/msg/Image`` pixel fields of a numpy image.

    Args:
        image: the pixels in the channel order of ``encoding``: ``(H, W, 3)`` uint8 for
            rgb8/bgr8, ``(H, W, 4)`` uint8 for rgba8/bgra8, ``(H, W)`` uint8 for mono8/8UC1,
            ``(H, W)`` uint16 for mono16/16UC1.
        encoding: one of :data:`ENCODINGS`; chosen by :func:`default_encoding` when None.
        big_endian: store 16-bit pixels big-endian (``is_bigendian = 1``).
        row_padding: extra bytes at the end of every row (``step > width * pixel size``).

    Raises:
        DataError: if the array does not fit the encoding.
        UnknownEncodingError: if the encoding is not one of :data:`ENCODINGS`.
        ConfigError: for a negative ``row_padding``.
    """
    image = np.asarray(image)
    enc = encoding or default_encoding(image)
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
    return ImageFields(
        height=height,
        width=width,
        encoding=enc,
        is_bigendian=int(big_endian and dtype.itemsize > 1),
        step=rows.shape[1],
        data=np.ascontiguousarray(rows).reshape(-1),
    )


def decode_image(msg: Any, topic: str | None = None) -> np.ndarray:
    """Decodes a ``sensor_msgs/msg/Image`` (rclpy, rosbags or any object with its fields).

    Args:
        msg: the message (fields height, width, encoding, is_bigendian, step, data).
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
    pixels = _pixels(msg, _LAYOUTS[enc], topic)
    if enc in ("bgr8", "bgra8"):
        pixels = pixels[..., 2::-1]
    elif enc == "rgba8":
        pixels = pixels[..., :3]
    return np.ascontiguousarray(pixels)


#: Depth image encodings :func:`decode_depth` accepts: millimetres as 16-bit integers, metres as floats.
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")


def decode_depth(msg: Any, topic: str | None = None) -> np.ndarray:
    """A depth ``sensor_msgs/msg/Image`` (REP 118) as ``(H, W)`` float32 metres, 0 where unknown.

    16UC1 (and mono16) hold millimetres, 0 for no return; 32FC1 holds metres, NaN or inf for no
    return. Negative values count as unknown too.

    Raises:
        UnknownEncodingError: for any other encoding (named, with the topic: a colour image sent to a
            depth topic, say). DataError: if ``step`` or the data length does not fit the size.
    """
    enc = str(msg.encoding)
    if enc not in DEPTH_ENCODINGS:
        raise UnknownEncodingError(
            f"depth images{_where(topic)} must be one of {', '.join(DEPTH_ENCODINGS)} (REP 118), got encoding {enc!r}"
        )
    if enc == "32FC1":
        metres = _pixels(msg, (1, np.dtype(np.float32)), topic)
    else:
        metres = depth_from_mm(_pixels(msg, _LAYOUTS[enc], topic))
    return np.where(np.isfinite(metres) & (metres > 0), metres, 0.0).astype(np.float32)


def depth_from_mm(mm: np.ndarray) -> np.ndarray:
    """16UC1 millimetres (a depth PNG, a 16UC1 message) as float32 metres; 0 stays 0 (unknown)."""
    return mm.astype(np.float32) / 1000.0


def depth_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """Depth in metres as 16UC1 millimetres (:func:`decode_depth`'s inverse; 0 and NaN: unknown)."""
    return np.clip(np.round(np.nan_to_num(depth_m, nan=0.0) * 1000.0), 0, 65535).astype(np.uint16)


def _pixels(msg: Any, layout: tuple[int, np.dtype], topic: str | None) -> np.ndarray:
    """The message's pixels as ``(H, W)`` or ``(H, W, C)`` of ``layout``'s dtype in native byte
    order (row padding dropped)."""
    channels, dtype = layout
    enc = str(msg.encoding)
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
    return pixels.astype(dtype.newbyteorder("="), copy=True)


def compress_image(image_rgb: np.ndarray, fmt: str = "jpeg") -> tuple[str, np.ndarray]:
    """The ``sensor_msgs/msg/CompressedImage`` fields (format, data) of an RGB or mono image.

    Args:
        image_rgb: ``(H, W, 3)`` uint8 RGB or ``(H, W)`` uint8 mono (png also ``(H, W)`` uint16).
        fmt: ``"jpeg"`` (or ``"jpg"``) or ``"png"``.

    Returns:
        ``("jpeg" | "png", (N,) uint8 encoded bytes)``.

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
    return ("jpeg" if ext == ".jpg" else "png"), np.asarray(buf, dtype=np.uint8).reshape(-1)


def decode_compressed(msg: Any, topic: str | None = None) -> np.ndarray:
    """Decodes a ``sensor_msgs/msg/CompressedImage`` (jpeg or png; also ``compressedDepth``).

    Args:
        msg: the message (fields format, data).
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
