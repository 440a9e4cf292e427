"""The queries of the cross-view evaluation: every object visible in a source view of a sim
episode, with both images, the target's ground truth and, with :class:`SimPoses`, both cameras'
calibration at that instant (and the source depth, and a simulated calibration error)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from corr_core.crossview.base import Matcher, MatchResult
from corr_core.data.labels import read_label_png
from corr_core.errors import DataError
from corr_core.geometry import CameraPose, ViewGeometry
from corr_core.methods.pcc.scenes import Scene, read_rgb


class SimPoses:
    """The cameras' calibration from a sim episode's metadata, for matchers that use geometry.

    Args:
        rot_deg, trans_m: a calibration error put on the target camera of each query (a random
            axis and direction, drawn from ``seed``, the episode, instant and direction, so that
            calibration and scoring see the same error).
        depth: also the source camera's depth image (an RGB-D camera).
    """

    def __init__(self, rot_deg: float = 0.0, trans_m: float = 0.0, seed: int = 0, depth: bool = False) -> None:
        if rot_deg < 0 or trans_m < 0:
            raise DataError(f"pose error must be >= 0, got {rot_deg} deg, {trans_m} m")
        self.rot_deg, self.trans_m, self.seed, self.depth = float(rot_deg), float(trans_m), int(seed), bool(depth)

    def pair(self, scene: Scene, src_cam: str, tgt_cam: str, t: int, size: tuple[int, int] | None = None
             ) -> ViewGeometry:
        """Both cameras at frame ``t``; the source depth (if asked) at ``size`` ``(H, W)``, the
        source frames' size (depth images are written at the episode's native size)."""
        src = CameraPose.from_sim(scene.meta, src_cam, t)
        tgt = CameraPose.from_sim(scene.meta, tgt_cam, t)
        if self.rot_deg or self.trans_m:
            key = f"{self.seed}/{scene.name}/{src_cam}/{tgt_cam}/{t}".encode()
            rng = np.random.default_rng(int.from_bytes(hashlib.sha1(key).digest()[:8], "little"))
            tgt = tgt.perturbed(self.rot_deg, self.trans_m, rng)
        if not self.depth:
            return ViewGeometry(src, tgt)
        return ViewGeometry(src, tgt, scene.depth_m(src_cam, t, size))

    def describe(self) -> dict[str, Any]:
        return {"rot_deg": self.rot_deg, "trans_m": self.trans_m, "depth": self.depth}


@dataclass
class Query:
    """The queries of one instant and direction: every object visible in the source view."""

    direction: str
    episode: int
    scene: Scene
    t: int
    src_rgb: np.ndarray
    labels: np.ndarray  # source ground truth restricted to the queried ids
    tgt_rgb: np.ndarray
    tgt_truth: np.ndarray
    ids: list[int]
    visible: set[int]  # ids visible in the target view
    geometry: ViewGeometry | None = None  # both cameras, when poses are given

    def match(self, matcher: Matcher) -> MatchResult:
        """``matcher``'s answer (with the cameras' geometry when the query has it)."""
        return matcher.match(self.src_rgb, self.labels, self.tgt_rgb, geometry=self.geometry)


def queries(scenes: Sequence[Scene], directions: Sequence[tuple[str, str]], every: int = 5,
            min_pixels: int = 20, poses: SimPoses | None = None) -> Iterator[Query]:
    """The queries of :func:`evaluate_crossview`, direction by direction (with the cameras'
    geometry from ``poses`` when given).

    Raises:
        DataError: a scene without ground truth for a camera of ``directions``, or without
            calibration when ``poses`` is given.
    """
    for src_cam, tgt_cam in directions:
        for e, scene in enumerate(scenes):
            for cam in (src_cam, tgt_cam):
                if cam not in scene.labels:
                    raise DataError(f"scene {scene.name}: no ground-truth labels for camera {cam!r}")
            for t in range(0, scene.num_frames, max(1, int(every))):
                src_gt = read_label_png(scene.labels[src_cam][t])
                ids, counts = np.unique(src_gt, return_counts=True)
                chosen = [int(i) for i, n in zip(ids, counts, strict=True) if i != 0 and n >= min_pixels]
                if not chosen:
                    continue
                tgt_gt = read_label_png(scene.labels[tgt_cam][t])
                tids, tcounts = np.unique(tgt_gt, return_counts=True)
                visible = {int(i) for i, n in zip(tids, tcounts, strict=True) if i != 0 and n >= min_pixels}
                yield Query(f"{src_cam}->{tgt_cam}", e, scene, t, read_rgb(scene.frames[src_cam][t]),
                            np.where(np.isin(src_gt, chosen), src_gt, 0), read_rgb(scene.frames[tgt_cam][t]),
                            tgt_gt, chosen, visible,
                            poses.pair(scene, src_cam, tgt_cam, t, src_gt.shape) if poses is not None else None)
