"""What ``corr bag process`` (:mod:`corr_core.commands.bag_process`) keeps around its pipeline: the
cameras of a bag, masks read from bag topics and handed out in time order, and the resumable
output (closed bag parts, progress, last labels; merged into the final bag at the end).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from corr_core.errors import DataError, MissingCameraError

__all__ = ["MaskFeed", "Partial", "detect_topics", "merge_parts", "read_mask_topics"]

_IMAGE_TOPIC = re.compile(r"^/?(?P<cam>.+?)/image_raw(/compressed)?$")


def detect_topics(bag_topics: dict[str, Any]) -> dict[str, str]:
    """``{cam: topic}`` of the ``/<cam>/image_raw`` (or ``/compressed``) topics of a bag (raw first).

    Raises:
        DataError: no such topic.
    """
    found: dict[str, str] = {}
    for topic in sorted(bag_topics, key=lambda t: (t.endswith("/compressed"), t)):
        match = _IMAGE_TOPIC.match(topic)
        if match and match["cam"] not in found:
            found[match["cam"]] = topic
    if not found:
        raise DataError(f"no /<cam>/image_raw topics in the bag (topics: {sorted(bag_topics)}); give --topics")
    return found


class MaskFeed:
    """Masks from bag topics, handed to the anchors in time order as frames go by."""

    def __init__(self, masks: dict[str, list[tuple[int, Any]]], slop_ns: int) -> None:
        self.masks = {cam: sorted(items, key=lambda m: m[0]) for cam, items in masks.items()}
        self.next = dict.fromkeys(self.masks, 0)
        self.slop_ns = slop_ns

    def feed(self, anchors: Any, cam: str, stamp_ns: int) -> None:
        """Puts every mask of ``cam`` stamped up to ``stamp_ns`` plus the slop (the latest one wins)."""
        items = self.masks.get(cam, [])
        i = self.next.get(cam, 0)
        while i < len(items) and items[i][0] <= stamp_ns + self.slop_ns:
            anchors.put(cam, items[i][0], items[i][1])
            i += 1
        self.next[cam] = i


def read_mask_topics(path: Path, topics: dict[str, str]) -> dict[str, list[tuple[int, Any]]]:
    """``{cam: [(stamp_ns, labels)]}`` from label-image topics of the bag."""
    from corr_core.data.bag import IMAGE_TYPE, TYPESTORE, decode_image, header_stamp_ns
    from corr_core.data.bag.source import BagSource

    out: dict[str, list[tuple[int, Any]]] = {cam: [] for cam in topics}
    cam_of = {t: c for c, t in topics.items()}
    source = BagSource(path)
    try:
        for cam, topic in topics.items():
            if topic not in source.topics:
                raise MissingCameraError(f"masks topic {topic} for camera {cam!r} is not in bag {path}; available "
                                         f"topics: {sorted(source.topics)}")
            if source.topics[topic] != IMAGE_TYPE:
                raise DataError(f"masks topic {topic} in {path} carries {source.topics[topic]}, expected {IMAGE_TYPE}")
        for topic, msgtype, _, data in source.messages(set(cam_of)):
            msg = TYPESTORE.deserialize_cdr(data, msgtype)
            labels = decode_image(msg, topic)
            if labels.ndim != 2:
                raise DataError(f"masks topic {topic}: a label image must be mono8 or mono16, got {msg.encoding}")
            out[cam_of[topic]].append((header_stamp_ns(msg.header), labels))
    finally:
        source.close()
    return out


class Partial:
    """``OUT.partial``: closed bag parts, the progress file and the last labels of each camera."""

    def __init__(self, out: Path) -> None:
        self.root = out.with_name(out.name + ".partial")
        self.progress_path = self.root / "progress.json"

    def load(self) -> dict[str, Any] | None:
        if not self.progress_path.is_file():
            return None
        return json.loads(self.progress_path.read_text())

    def part(self, index: int) -> Path:
        return self.root / f"part_{index:05d}"

    def save(self, progress: dict[str, Any], last_labels: dict[str, Any]) -> None:
        import numpy as np

        folder = self.root / "last_labels"
        folder.mkdir(parents=True, exist_ok=True)
        for cam, labels in last_labels.items():
            tmp = folder / f"{cam}.tmp.npy"
            np.save(tmp, labels, allow_pickle=False)
            tmp.replace(folder / f"{cam}.npy")
        tmp = self.progress_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(progress, indent=2))
        tmp.replace(self.progress_path)

    def last_labels(self, cams: list[str]) -> dict[str, Any]:
        import numpy as np

        out = {}
        for cam in cams:
            path = self.root / "last_labels" / f"{cam}.npy"
            if path.is_file():
                out[cam] = np.load(path, allow_pickle=False)
        return out

    def discard_unlisted(self, parts: list[str]) -> None:
        """Removes parts the progress file does not list (a part left open by a killed run)."""
        for path in self.root.glob("part_*"):
            if path.name not in parts:
                shutil.rmtree(path)


def merge_parts(parts: list[Path], out: Path) -> int:
    """Writes the messages of the closed parts, in order, into the new bag ``out``; returns their count."""
    from corr_core.data.bag import BagWriter
    from corr_core.data.bag.source import BagSource

    count = 0
    with BagWriter(out) as writer:
        for part in parts:
            source = BagSource(part)
            try:
                for topic, msgtype, log_time, data in source.messages(set(source.topics)):
                    writer.add_raw(topic, msgtype, log_time, data)
                    count += 1
            finally:
                source.close()
    return count
