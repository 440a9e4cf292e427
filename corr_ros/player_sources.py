"""Where ``corr_player``'s frames come from: a DAVIS-layout episode or a rosbag2 (no ROS here).

Each yields :class:`Frame` objects: one RGB image per camera with its header's frame id, and from a
bag the header stamps, camera_info, and a camera's pose and depth where the bag has them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from corr_core.errors import DataError
from corr_core.topics import DEPTH, POSE, camera_topic

__all__ = ["BagEpisode", "DavisEpisode", "Frame"]

@dataclass
class Frame:
    """One frame of every camera: ``(H, W, 3)`` uint8 RGB images and their headers' stamp/frame."""

    images: dict[str, np.ndarray]
    frame_ids: dict[str, str]
    stamps_ns: dict[str, int] | None = None
    infos: dict[str, Any] = field(default_factory=dict)
    poses: dict[str, Any] = field(default_factory=dict)  # camera -> StampedPose (bag source)
    depths: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> (H, W) float32 metres


class DavisEpisode:
    """An episode in the DAVIS layout with one sub-folder per camera.

    Raises:
        DataError: missing folders or frames; differing frame counts are cut to the shortest.
    """

    def __init__(
        self, root: str | Path, cameras: list[str], resolution: str, sequence: str, frame_id_suffix: str = ""
    ) -> None:
        from corr_core.data.davis import DavisDataset

        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"episode folder not found: {self.root} (parameter 'root')")
        if not cameras:
            cameras = sorted(p.name for p in self.root.iterdir() if (p / "JPEGImages").is_dir())
            if not cameras:
                raise DataError(f"{self.root} holds no camera folders with JPEGImages/ (parameter 'root')")
        self.cameras = list(cameras)
        self._sets = {}
        self._seq = {}
        for cam in self.cameras:
            jpeg = self.root / cam / "JPEGImages"
            if not jpeg.is_dir():
                raise DataError(f"camera {cam!r}: {jpeg} not found")
            res = resolution or next(iter(sorted(p.name for p in jpeg.iterdir() if p.is_dir())), "")
            ds = DavisDataset(self.root / cam, resolution=res)
            seq = sequence or ds.sequences[0]
            if seq not in ds.sequences:
                raise DataError(
                    f"camera {cam!r}: sequence {seq!r} not in {ds.image_dir}; have {ds.sequences}"
                )
            self._sets[cam], self._seq[cam] = ds, seq
        counts = {c: self._sets[c].num_frames(self._seq[c]) for c in self.cameras}
        self.length = min(counts.values())
        self.frame_ids = {c: f"{c}{frame_id_suffix}" for c in self.cameras}

    def first_masks(self) -> dict[str, np.ndarray]:
        """Camera -> the first frame's ``(H, W)`` label map."""
        return {c: self._sets[c].read_annotation(self._seq[c], 0) for c in self.cameras}

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.length):
            images = {c: self._sets[c].read_frame(self._seq[c], i) for c in self.cameras}
            yield Frame(images, dict(self.frame_ids))


class BagEpisode:
    """Synchronised camera images from a rosbag2 file (topics ``/<camera>/image_raw[/compressed]``)."""

    def __init__(self, path: str | Path, cameras: list[str], slop_s: float) -> None:
        from corr_core.data.bag import bag_info

        self.path = Path(path)
        topics = bag_info(self.path)["topics"]
        if not cameras:
            cameras = sorted(
                t.strip("/")[: -len("/image_raw")] for t in topics if t.endswith("/image_raw")
            ) or sorted(
                t.strip("/")[: -len("/image_raw/compressed")]
                for t in topics
                if t.endswith("/image_raw/compressed")
            )
            if not cameras:
                raise DataError(f"bag {self.path} has no <camera>/image_raw topics; topics: {sorted(topics)}")
        self.cameras = list(cameras)
        self.topics: dict[str, str] = {}
        for cam in self.cameras:
            for cand in (f"/{cam}/image_raw", f"/{cam}/image_raw/compressed"):
                if cand in topics:
                    self.topics[cam] = cand
                    break
            else:
                raise DataError(f"bag {self.path} has no /{cam}/image_raw topic; topics: {sorted(topics)}")
            for role, topic in (("camera_info", f"/{cam}/camera_info"), ("pose", camera_topic(cam, POSE, True)),
                                ("depth", camera_topic(cam, DEPTH, True))):
                if topic in topics:
                    self.topics[f"{cam}/{role}"] = topic
        self.slop_s = slop_s
        self.length = None

    def first_masks(self) -> dict[str, np.ndarray]:
        raise DataError(f"bag {self.path} holds no masks: give one label PNG per camera in parameter 'masks'")

    def __iter__(self) -> Iterator[Frame]:
        from corr_core.data.bag import read_synced, to_rgb

        with read_synced(self.path, self.topics, slop_s=self.slop_s) as reader:
            for synced in reader:
                yield Frame(
                    {c: to_rgb(img) for c, img in synced.images.items()},
                    {c: h.frame_id for c, h in synced.headers.items()},
                    {c: h.stamp_ns for c, h in synced.headers.items()},
                    dict(synced.camera_info),
                    dict(synced.poses),
                    dict(synced.depths),
                )
