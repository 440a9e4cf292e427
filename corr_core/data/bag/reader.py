"""Time-synchronised multi-camera frames from a rosbag2 bag: :func:`read_synced` / :class:`BagReader`.

Image messages of the cameras are matched by :class:`corr_core.sync.ApproximateSynchronizer`
(stamps within a slop) and decoded by :mod:`corr_core.data.image_codec`; a damaged bag yields every
complete set read before the damage, then raises :class:`~corr_core.errors.CorruptBagError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from corr_core.data.bag.messages import (
    CAMERA_INFO_TYPE,
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    POSE_TYPE,
    TYPESTORE,
    CameraCalibration,
    StampedPose,
    decode_camera_info,
    decode_pose,
    header_stamp_ns,
)
from corr_core.data.bag.source import BagSource
from corr_core.data.image_codec import decode_compressed, decode_depth, decode_image
from corr_core.errors import ConfigError, CorruptBagError, DataError, MissingCameraError
from corr_core.sync import ApproximateSynchronizer, NearestStamp

#: Per-camera data that rides beside the images (topic key ``"<cam>/<role>"``), matched to each
#: image by the nearest stamp within the slop: a moving camera's pose, an RGB-D camera's depth.
SIDE_ROLES = {"pose": (POSE_TYPE,), "depth": (IMAGE_TYPE,)}

log = logging.getLogger("corr_core.data.bag")


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
            (see :func:`~corr_core.data.image_codec.decode_image`; :func:`~corr_core.data.image_codec.to_rgb`
            makes any of them RGB).
        headers: camera -> :class:`FrameHeader`.
        camera_info: camera -> the latest :class:`CameraCalibration` received before the set, for
            cameras whose camera_info topic was given and has been seen.
        poses: camera -> its :class:`~corr_core.data.bag.messages.StampedPose` nearest its image's
            stamp (within the slop, read before the set), for cameras whose pose topic was given.
        depths: camera -> ``(H, W)`` float32 metres (0: unknown) of its depth image nearest its
            image's stamp, likewise.
    """

    stamp_ns: int
    images: dict[str, np.ndarray]
    headers: dict[str, FrameHeader]
    camera_info: dict[str, CameraCalibration] = field(default_factory=dict)
    poses: dict[str, StampedPose] = field(default_factory=dict)
    depths: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class SyncStats:
    """What :class:`BagReader` did with the messages of every camera.

    Attributes:
        messages: camera -> image messages read.
        dropped: camera -> image messages that ended up in no set (no partner within the slop,
            queue overflow, out-of-order stamps, or left over when the bag ended).
        sets: complete sets yielded.
        first_stamp_ns, last_stamp_ns: camera -> first/last image header stamp seen.
        skipped: topic -> pose or depth messages that did not decode.
    """

    messages: dict[str, int]
    dropped: dict[str, int]
    sets: int = 0
    first_stamp_ns: dict[str, int] = field(default_factory=dict)
    last_stamp_ns: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


def _split_topics(
    topics: dict[str, str], camera_info: dict[str, str] | None
) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, str]]]:
    images: dict[str, str] = {}
    infos: dict[str, str] = dict(camera_info or {})
    side: dict[str, dict[str, str]] = {role: {} for role in SIDE_ROLES}
    for key, topic in topics.items():
        cam, _, role = key.rpartition("/")
        if role == "camera_info" and cam:
            infos[cam] = topic
        elif role in SIDE_ROLES and cam:
            side[role][cam] = topic
        else:
            images[key] = topic
    if not images:
        raise ConfigError("no camera image topics given (topics maps camera name -> image topic)")
    for role, mapping in (("camera_info", infos), *side.items()):
        unknown = sorted(set(mapping) - set(images))
        if unknown:
            raise ConfigError(f"{role} given for unknown camera(s) {unknown}; cameras: {sorted(images)}")
    used = list(images.values()) + list(infos.values()) + [t for m in side.values() for t in m.values()]
    dupes = sorted({t for t in used if used.count(t) > 1})
    if dupes:
        raise ConfigError(f"topic(s) {dupes} assigned to more than one camera/role")
    return images, infos, side


class BagReader:
    """Iterates time-synchronised multi-camera frames from a rosbag2 bag (mcap or sqlite3).

    The bag is opened and the topics are checked on construction; iterating yields
    :class:`SyncedFrames` in time order. ``stats`` (a :class:`SyncStats`) is updated as it goes and
    is final once iteration ends. A bag that is damaged part-way yields every complete set read
    before the damage, then raises :class:`CorruptBagError`.

    Args:
        path: a bag folder (with metadata.yaml), or one ``.mcap``/``.db3`` file.
        topics: camera name -> image topic (``sensor_msgs/msg/Image`` or ``CompressedImage``).
            A key ``"<cam>/camera_info"`` names that camera's ``CameraInfo`` topic, ``"<cam>/pose"``
            its ``geometry_msgs/PoseStamped`` topic and ``"<cam>/depth"`` its depth image topic
            (16UC1 mm or 32FC1 m), read beside the images (:class:`SyncedFrames`). A pose or depth
            message that does not decode is skipped with a warning (``stats.skipped``).
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
        self.image_topics, self.info_topics, self.side_topics = _split_topics(dict(topics), camera_info)
        if not slop_s >= 0:
            raise ConfigError(f"slop must be >= 0 s, got {slop_s}")
        self.slop_ns = int(round(slop_s * 1e9))
        self.queue_size = int(queue_size)
        self._sync: ApproximateSynchronizer[Any] = ApproximateSynchronizer(
            list(self.image_topics), self.slop_ns, self.queue_size
        )
        self._source = BagSource(path)
        self.path = self._source.path
        try:
            self._check_topics()
        except BaseException:
            self._source.close()
            raise
        cams = list(self.image_topics)
        self.stats = SyncStats(messages={c: 0 for c in cams}, dropped={c: 0 for c in cams})
        self._side: dict[tuple[str, str], NearestStamp[Any]] = {}
        self._gen = self._run()

    def _check_topics(self) -> None:
        have = self._source.topics
        for role, mapping, types in (
            ("image", self.image_topics, (IMAGE_TYPE, COMPRESSED_TYPE)),
            ("camera_info", self.info_topics, (CAMERA_INFO_TYPE,)),
            *((role, self.side_topics[role], types) for role, types in SIDE_ROLES.items()),
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
        side_of = {t: (role, c) for role, m in self.side_topics.items() for c, t in m.items()}
        latest_info: dict[str, CameraCalibration] = {}
        try:
            for topic, msgtype, log_time, data in self._source.messages(set(cam_of) | set(info_cam) | set(side_of)):
                msg = self._deserialize(data, msgtype, topic)
                if topic in info_cam:
                    latest_info[info_cam[topic]] = decode_camera_info(msg)
                    continue
                if topic in side_of:
                    self._keep_side(side_of[topic], topic, msg, int(log_time))
                    continue
                cam = cam_of[topic]
                stamp = int(log_time) if self.use_receive_time else header_stamp_ns(msg.header)
                self.stats.messages[cam] += 1
                self.stats.first_stamp_ns.setdefault(cam, stamp)
                self.stats.last_stamp_ns[cam] = stamp
                for synced in self._sync.add(cam, stamp, (topic, msgtype, msg)):
                    yield self._counted(synced, latest_info)
            for synced in self._sync.flush():  # sets that waited for a next message
                yield self._counted(synced, latest_info)
        finally:
            self._update_dropped(final=True)
            self._source.close()
        self._warn_dropped()

    def _counted(self, synced: Any, latest_info: dict[str, CameraCalibration]) -> Any:
        frames = self._frames(synced, latest_info)
        self.stats.sets += 1
        self._update_dropped()
        return frames

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

    def _keep_side(self, key: tuple[str, str], topic: str, msg: Any, log_time: int) -> None:
        """Decodes a pose or depth message and keeps it by stamp (one that does not decode is skipped)."""
        role, _ = key
        try:
            value: Any = decode_pose(msg, topic) if role == "pose" else decode_depth(msg, topic)
        except DataError as exc:  # UnknownEncodingError included
            n = self.stats.skipped.get(topic, 0)
            self.stats.skipped[topic] = n + 1
            if n == 0:
                log.warning("%s: skipping %s messages on %s that do not decode: %s", self.path, role, topic, exc)
            return
        stamp = log_time if self.use_receive_time else header_stamp_ns(msg.header)
        self._side.setdefault(key, NearestStamp(2 * self.queue_size)).put(stamp, value)

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
        side: dict[str, dict[str, Any]] = {role: {} for role in SIDE_ROLES}
        for (role, cam), history in self._side.items():
            value = history.nearest(int(synced.stamps_ns[cam]), self.slop_ns)
            if value is not None:
                side[role][cam] = value
        return SyncedFrames(int(synced.stamp_ns), images, headers, infos, side["pose"], side["depth"])


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
