"""Multi-camera recordings for PCC: scenes of synchronised frames, from sim folders, DAVIS or bags.

A :class:`Scene` is one recording: for each camera a list of frame files, aligned by index (frame
``t`` of every camera was taken at the same time). Training pairs are drawn from scenes by
:class:`PairSampler`: two cameras at the same instant (cross-view) or one camera at a time gap.

Sources:

* :func:`sim_scenes`: a ``corr generate sim`` folder (``<root>/<cam>/JPEGImages/<res>/<episode>/``,
  ground-truth ``Annotations`` and ``Depth`` beside them, ``<root>/meta/<episode>.json``);
* :func:`davis_scenes`: DAVIS-layout sequences, one camera each (time-gap pairs only);
* :func:`bag_scenes`: a rosbag2 recording, synchronised with :class:`~corr_core.data.bag.BagReader`
  and written once as JPEG files into a cache folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from corr_core.data.image_codec import depth_from_mm
from corr_core.errors import ConfigError, DataError
from corr_core.train.data import read_rgb  # noqa: F401  (re-exported: the PCC modules read frames through here)

log = logging.getLogger(__name__)


@dataclass
class Scene:
    """One recording.

    Attributes:
        name: unique name (episode, sequence or bag).
        frames: camera -> frame files, aligned by index across cameras.
        labels: camera -> ground-truth label PNGs (simulated scenes; evaluation only), or empty.
        depth: camera -> depth PNGs (uint16 millimetres), or empty.
        meta: extra information (a sim episode's metadata: objects and their look-alikes).
    """

    name: str
    frames: dict[str, list[Path]]
    labels: dict[str, list[Path]] = field(default_factory=dict)
    depth: dict[str, list[Path]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def cameras(self) -> list[str]:
        return list(self.frames)

    def depth_m(self, camera: str, t: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """``(H, W)`` float32 depth of ``camera`` at frame ``t`` in metres along its optical axis
        (0: no surface), from the uint16 millimetre PNGs ``corr generate sim`` writes at the
        episode's native size; with ``size`` ``(H, W)`` (its frames' size), resized to it (nearest:
        no depth is made up between surfaces).

        Raises:
            DataError: no depth for that camera, or an unreadable file.
        """
        files = self.depth.get(camera)
        if not files:
            raise DataError(f"scene {self.name}: no depth images for camera {camera!r}")
        raw = cv2.imread(str(files[t]), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise DataError(f"{files[t]}: not a readable depth PNG")
        depth = depth_from_mm(raw)
        if size is not None and depth.shape != tuple(size):
            depth = cv2.resize(depth, (int(size[1]), int(size[0])), interpolation=cv2.INTER_NEAREST)
        return depth

    @property
    def num_frames(self) -> int:
        """Frames every camera has."""
        return min(len(v) for v in self.frames.values())


def _files(folder: Path, suffix: str) -> list[Path]:
    return sorted(p for p in folder.glob(f"*{suffix}") if p.is_file())


def sim_scenes(root: str | Path, resolution: str = "240p", cameras: Sequence[str] | None = None,
               episodes: Sequence[str] | None = None) -> list[Scene]:
    """The episodes of a ``corr generate sim`` folder, with ground truth and depth where present.

    Raises:
        DataError: no such folder, no episodes, or an episode whose cameras disagree in length.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"sim folder not found: {root}")
    cams = list(cameras) if cameras else sorted(
        p.name for p in root.iterdir() if (p / "JPEGImages" / resolution).is_dir()
    )
    if not cams:
        raise DataError(f"{root}: no camera folders with JPEGImages/{resolution}/ (is it a `corr generate sim` output?)")
    names = list(episodes) if episodes else sorted(
        p.name for p in (root / cams[0] / "JPEGImages" / resolution).iterdir() if p.is_dir()
    )
    scenes = []
    for name in names:
        frames, labels, depth = {}, {}, {}
        for cam in cams:
            folder = root / cam / "JPEGImages" / resolution / name
            frames[cam] = _files(folder, ".jpg")
            if not frames[cam]:
                raise DataError(f"{folder}: no frames for camera {cam!r} of episode {name!r}")
            ann = _files(root / cam / "Annotations" / resolution / name, ".png")
            if ann:
                labels[cam] = ann
            dep = _files(root / cam / "Depth" / name, ".png")
            if dep:
                depth[cam] = dep
        lengths = {c: len(v) for c, v in frames.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"{root}: episode {name!r} has cameras of different lengths {lengths}")
        meta_path = root / "meta" / f"{name}.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        scenes.append(Scene(name, frames, labels, depth, meta))
    if not scenes:
        raise DataError(f"{root}: no episodes under {root / cams[0] / 'JPEGImages' / resolution}")
    return scenes


def davis_scenes(root: str | Path, resolution: str = "240p", exclude: Sequence[str] = (),
                 every: int = 1) -> list[Scene]:
    """DAVIS-layout sequences as one-camera scenes (camera ``"cam"``), held-out ones excluded."""
    from corr_core.data.davis import DavisDataset

    ds = DavisDataset(root, resolution=resolution)
    return [Scene(f"davis:{seq}", {"cam": ds.frames(seq)[:: max(1, int(every))]})
            for seq in ds.sequences if seq not in set(exclude)]


def bag_scenes(path: str | Path, topics: dict[str, str], cache_dir: str | Path, slop_s: float = 0.05,
               every: int = 1) -> list[Scene]:
    """A rosbag2 recording as one scene: synchronised sets decoded once into ``cache_dir``.

    Args:
        path: bag folder or storage file.
        topics: camera name -> image topic.
        cache_dir: where ``<bag name>/<cam>/%05d.jpg`` are written (reused when complete).
        slop_s: synchronisation slop.
        every: keep every n-th synchronised set.

    Raises:
        CorruptBagError / MissingCameraError / DataError: from the bag reader; DataError when no
        set could be formed.
    """
    from corr_core.data.bag import BagReader, to_rgb

    path = Path(path)
    out = Path(cache_dir) / path.name
    done = out / "complete.json"
    cams = list(topics)
    if done.is_file() and json.loads(done.read_text()).get("topics") == topics:
        frames = {c: _files(out / c, ".jpg") for c in cams}
        return [Scene(f"bag:{path.name}", frames)]
    n = 0
    with BagReader(path, topics, slop_s=slop_s) as reader:
        for k, synced in enumerate(reader):
            if k % max(1, int(every)):
                continue
            for cam in cams:
                (out / cam).mkdir(parents=True, exist_ok=True)
                rgb = to_rgb(synced.images[cam])
                cv2.imwrite(str(out / cam / f"{n:05d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            n += 1
    if n == 0:
        raise DataError(f"bag {path}: no synchronised set of {cams} within {slop_s} s")
    done.write_text(json.dumps({"topics": topics, "sets": n}))
    log.info("bag %s: %d synchronised sets of %s cached in %s", path, n, cams, out)
    return [Scene(f"bag:{path.name}", {c: _files(out / c, ".jpg") for c in cams})]


@dataclass(frozen=True)
class View:
    """One frame of one camera of a scene."""

    scene: str
    cam: str
    t: int

    def key(self) -> str:
        return f"{self.scene}/{self.cam}/{self.t:05d}"


@dataclass(frozen=True)
class Pair:
    """A source view and a target view of the same scene."""

    src: View
    tgt: View

    @property
    def cross_view(self) -> bool:
        return self.src.cam != self.tgt.cam


class PairSampler:
    """Random training pairs: cross-view (two cameras, same instant) or one camera at a time gap.

    Args:
        scenes: the recordings.
        cross_view: probability of a cross-view pair (scenes with one camera give time gaps).
        gap: ``(min, max)`` frames between the two views of a time-gap pair.
        seed: random seed.
    """

    def __init__(self, scenes: Sequence[Scene], cross_view: float = 0.7, gap: tuple[int, int] = (5, 15),
                 seed: int = 0) -> None:
        if not scenes:
            raise ConfigError("PCC: no scenes to draw training pairs from (check the data section)")
        if not 1 <= int(gap[0]) <= int(gap[1]):
            raise ConfigError(f"PCC: time gap must be 1 <= min <= max frames, got {list(gap)}")
        self.scenes = list(scenes)
        self.by_name = {s.name: s for s in self.scenes}
        self.cross_view = float(cross_view)
        self.gap = (int(gap[0]), int(gap[1]))
        self.rng = np.random.default_rng(seed)

    def sample(self) -> Pair:
        scene = self.scenes[int(self.rng.integers(len(self.scenes)))]
        n, cams = scene.num_frames, scene.cameras
        if len(cams) > 1 and self.rng.random() < self.cross_view:
            a, b = self.rng.choice(len(cams), 2, replace=False)
            t = int(self.rng.integers(n))
            return Pair(View(scene.name, cams[a], t), View(scene.name, cams[b], t))
        cam = cams[int(self.rng.integers(len(cams)))]
        gap = min(int(self.rng.integers(self.gap[0], self.gap[1] + 1)), max(n - 1, 0))
        t = int(self.rng.integers(n - gap)) if n > gap else 0
        ts = (t, t + gap) if self.rng.random() < 0.5 else (t + gap, t)
        return Pair(View(scene.name, cam, ts[0]), View(scene.name, cam, ts[1]))

    def frame_path(self, view: View) -> Path:
        return self.by_name[view.scene].frames[view.cam][view.t]


def fit_size(img: np.ndarray, size: tuple[int, int], rng: np.random.Generator | None = None,
             interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Resizes ``img`` so that it covers ``size`` (H, W), then crops (randomly with ``rng``, else
    centred) to exactly ``size``."""
    h, w = img.shape[:2]
    th, tw = size
    scale = max(th / h, tw / w)
    if abs(scale - 1.0) > 1e-6:
        img = cv2.resize(img, (max(tw, round(w * scale)), max(th, round(h * scale))), interpolation=interpolation)
    h, w = img.shape[:2]
    y0 = int(rng.integers(h - th + 1)) if rng is not None else (h - th) // 2
    x0 = int(rng.integers(w - tw + 1)) if rng is not None else (w - tw) // 2
    return img[y0 : y0 + th, x0 : x0 + tw]
