"""Scoring label images recorded from a live run against a DAVIS-layout episode.

``corr demo`` (:mod:`corr_ros.demo`) plays a rendered episode through the live node and records
its ``<camera>/labels`` and ``<camera>/overlay`` topics to a rosbag2 file; this module reads that
bag back (:func:`read_recorded_images`), scores every camera with the DAVIS metrics
(:func:`score_cameras`) and writes the overlays as images (:func:`write_overlays`). Nothing here
starts a process or imports ROS.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_recorded_images", "score_cameras", "write_overlays"]

#: ``{kind: {camera: {stamp_ns: image}}}``, kind being the last topic name part (``labels``, ``overlay``).
Recorded = dict[str, dict[str, dict[int, np.ndarray]]]


def read_recorded_images(bag: Path, kinds: Sequence[str] = ("labels", "overlay")) -> Recorded:
    """The images of a recorded bag whose topics are ``/<camera>/<kind>``.

    Args:
        bag: rosbag2 folder written by ``corr_recorder``.
        kinds: topic name endings to read (others are skipped).

    Returns:
        ``{kind: {camera: {header stamp (ns): array}}}``; labels as ``(H, W)`` integer maps,
        overlays as ``(H, W, 3)`` uint8 RGB.

    Raises:
        DataError: the bag or one of its images cannot be read (the message names it).
    """
    from rosbags.rosbag2 import Reader

    from corr_core.data.bag import TYPESTORE, decode_image, header_stamp_ns

    out: Recorded = {kind: {} for kind in kinds}
    with Reader(bag) as reader:
        for conn, _, raw in reader.messages():
            cam, kind = conn.topic.strip("/").rsplit("/", 1)
            if kind not in out:
                continue
            msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            out[kind].setdefault(cam, {})[header_stamp_ns(msg.header)] = decode_image(msg, conn.topic)
    return out


def score_cameras(
    labels: dict[str, dict[int, np.ndarray]],
    episode_root: Path,
    sequence: str,
    stamps: Sequence[int],
    cameras: Sequence[str],
) -> dict[str, Any]:
    """DAVIS J&F per camera of recorded labels against the episode's annotations.

    Args:
        labels: ``{camera: {stamp_ns: (H, W) labels}}`` (a missing frame scores as empty).
        episode_root: folder with one DAVIS-layout folder per camera (``<root>/<cam>/JPEGImages/...``).
        sequence: the sequence name in those folders.
        stamps: the stamp of frame ``i`` of the sequence, in order.
        cameras: cameras to score.

    Returns:
        ``{camera: {"J&F-Mean", "J-Mean", "F-Mean", "frames", "frames_without_labels", "objects"}}``.
    """
    from corr_core.data.davis import DavisDataset
    from corr_core.metrics.davis import evaluate_sequence

    per_cam: dict[str, Any] = {}
    for cam in cameras:
        resolution = next((episode_root / cam / "JPEGImages").iterdir()).name
        ds = DavisDataset(episode_root / cam, resolution=resolution)
        got = labels.get(cam, {})
        missing = [i for i, s in enumerate(stamps) if s not in got]
        gt = np.stack([ds.read_annotation(sequence, i) for i in range(len(stamps))])
        pred = np.stack([got.get(s, np.zeros_like(gt[0])) for s in stamps]).astype(np.int64)
        result = evaluate_sequence(gt, pred, name=f"{cam}/{sequence}", missing_objects="empty")
        objs = result["objects"]
        j = float(np.mean([o["J-Mean"] for o in objs.values()]))
        f = float(np.mean([o["F-Mean"] for o in objs.values()]))
        per_cam[cam] = {
            "J&F-Mean": (j + f) / 2,
            "J-Mean": j,
            "F-Mean": f,
            "frames": len(stamps),
            "frames_without_labels": missing,
            "objects": {
                str(k): {m: float(o[m]) for m in ("J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")}
                for k, o in objs.items()
            },
        }
    return per_cam


def write_overlays(overlays: dict[str, dict[int, np.ndarray]], stamps: Sequence[int], out: Path) -> None:
    """Writes ``out/<camera>/<frame index:05d>.jpg`` for every recorded overlay of a frame in ``stamps``."""
    import cv2

    for cam, images in overlays.items():
        folder = out / cam
        folder.mkdir(parents=True, exist_ok=True)
        for i, stamp in enumerate(stamps):
            if stamp in images:
                cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.cvtColor(images[stamp], cv2.COLOR_RGB2BGR))
