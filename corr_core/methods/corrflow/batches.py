"""CorrFlow's training batches: clips with quantised colour targets and the information bottleneck.

Every clip is ``T`` frames of one sequence (:class:`corr_core.data.clips.ClipPool`), cropped with one
box and resized to ``S x S``. The targets are the colour classes of the untouched frames
(:class:`~corr_core.methods.corrflow.colours.ColourQuantizer`); the network sees the frames
through CorrFlow's information bottleneck: with probability ``colour_drop`` one or two
RGB channels are zeroed (the same ones in every frame of the clip) and the rest rescaled by
``3 / (3 - dropped)``, and with probability ``jitter`` each frame gets its own colour jitter. So
the network cannot match pixels by their colour and must match them by what they look like.

All randomness lives here, in one numpy generator saved by :meth:`ClipBatches.state_dict` (with the
colour centroids), so a resumed run draws exactly the batches of the uninterrupted one; the coins
of scheduled sampling are drawn here too (``teacher``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from corr_core.data.clips import ClipPool
from corr_core.data.transforms import colour_jitter, crop_resize, random_crop_box, to_tensor
from corr_core.errors import ConfigError
from corr_core.methods.corrflow.colours import ColourQuantizer

log = logging.getLogger(__name__)


class ClipBatches:
    """Endless batches of colour-quantised clips.

    Args:
        pool: the clips' sequences.
        batch_size: clips per batch.
        crop_size: side ``S`` of the square crops.
        scale: crop area as a fraction of the frame, ``(min, max)``.
        clip_frames: ``T`` frames per clip (>= 2).
        clip_gap: ``(min, max)`` frames between consecutive frames of a clip.
        num_colours: ``K`` colour classes (k-means clusters), fitted on ``fit_frames`` frames drawn
            with a generator seeded by ``fit_seed`` (the same on every process of a run).
        colour_drop: probability of dropping input channels (CorrFlow: 0.7).
        jitter: probability of jittering the frames of a clip (CorrFlow: 0.1).
        seed: seed of the stream of clips.
        quantizer: given centroids instead of a fit.

    Yields dicts: ``frames`` ``(B, T, 3, S, S) float32`` (bottlenecked RGB, [0, 3]), ``colours``
    ``(B, T, S, S) int64`` classes of the untouched frames, ``teacher`` ``(B, T - 1) float32``
    uniform draws in [0, 1) (scheduled sampling compares them with its threshold).
    """

    def __init__(self, pool: ClipPool, batch_size: int, crop_size: int, scale: tuple[float, float],
                 clip_frames: int = 3, clip_gap: tuple[int, int] = (1, 1), num_colours: int = 16,
                 colour_drop: float = 0.7, jitter: float = 0.1, seed: int = 0, fit_seed: int = 0,
                 fit_frames: int = 64, quantizer: ColourQuantizer | None = None) -> None:
        if batch_size < 1 or crop_size < 16 or clip_frames < 2:
            raise ConfigError(f"batch_size must be >= 1, crop_size >= 16 and clip_frames >= 2, got "
                              f"{batch_size}, {crop_size}, {clip_frames}")
        gap = (int(clip_gap[0]), int(clip_gap[1]))
        if not 1 <= gap[0] <= gap[1]:
            raise ConfigError(f"data.clip_gap must be [min, max] with 1 <= min <= max, got {list(clip_gap)}")
        for name, p in (("colour_drop", colour_drop), ("jitter", jitter)):
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"data.{name} is a probability in [0, 1], got {p}")
        self.pool, self.batch_size, self.crop_size = pool, int(batch_size), int(crop_size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.clip_frames, self.clip_gap = int(clip_frames), gap
        self.colour_drop, self.jitter = float(colour_drop), float(jitter)
        self.candidates = pool.usable(self.clip_frames, gap[0])
        if not self.candidates:
            raise ConfigError(f"no sequence of the clip pool is long enough for {clip_frames} frames {gap[0]} apart")
        if quantizer is None:
            fit_rng = np.random.default_rng(fit_seed)
            frames = [self.pool.draw(fit_rng, 1, (1, 1), self.candidates)[0] for _ in range(fit_frames)]
            quantizer = ColourQuantizer.fit(frames, num_colours, fit_rng)
            log.info("colour clusters (Lab ab) fitted on %d frames: %s", fit_frames, quantizer.centroids.round(1).tolist())
        if quantizer.num_colours != num_colours:
            raise ConfigError(f"the colour quantizer has {quantizer.num_colours} classes, the model {num_colours}")
        self.quantizer = quantizer
        self.rng = np.random.default_rng(seed)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def state_dict(self) -> dict[str, Any]:
        """Where the stream is, and the colour centroids (resume continues exactly)."""
        return {"rng": self.rng.bit_generator.state, "centroids": self.quantizer.centroids.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        if "centroids" in state:
            self.quantizer = ColourQuantizer(np.asarray(state["centroids"], dtype=np.float64))

    def _clip(self) -> tuple[np.ndarray, np.ndarray]:
        """One clip: ``(T, S, S, 3) uint8`` crops and their ``(T, S, S)`` colour classes."""
        frames = self.pool.draw(self.rng, self.clip_frames, self.clip_gap, self.candidates)
        h, w = frames[0].shape[:2]
        box = random_crop_box(h, w, self.rng, self.scale)
        crops = []
        for f in frames:
            if f.shape[:2] != (h, w):  # a stream whose frame size changes: crop every frame the same way
                import cv2

                f = cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
            crops.append(crop_resize(f, box, self.crop_size))
        clip = np.stack(crops)
        return clip, self.quantizer(clip)

    def _bottleneck(self, clip: np.ndarray) -> torch.Tensor:
        """CorrFlow's information bottleneck on one clip -> ``(T, 3, S, S) float32``."""
        if self.rng.random() < self.jitter:
            clip = np.stack([colour_jitter(f, self.rng) for f in clip])
        x = to_tensor(list(clip))
        if self.rng.random() < self.colour_drop:
            n = int(self.rng.integers(1, 3))
            dropped = self.rng.choice(3, n, replace=False)
            x[:, dropped] = 0.0
            x *= 3.0 / (3 - n)
        return x

    def __next__(self) -> dict[str, torch.Tensor]:
        frames, colours = [], []
        for _ in range(self.batch_size):
            clip, classes = self._clip()
            frames.append(self._bottleneck(clip))
            colours.append(torch.from_numpy(classes.astype(np.int64)))
        teacher = torch.from_numpy(self.rng.random((self.batch_size, self.clip_frames - 1)).astype(np.float32))
        return {"frames": torch.stack(frames), "colours": torch.stack(colours), "teacher": teacher}


def build_clip_batches(cfg: dict[str, Any], data: dict[str, Any], cache_dir: Any, batch_size: int, seed: int,
                       render: bool = True) -> ClipBatches:
    """:class:`ClipBatches` from a resolved recipe (its ``data`` section and ``model.colours``)."""
    from corr_core.data.clips import build_clip_pool

    pool = build_clip_pool(data, cache_dir=cache_dir, render_sim=render)
    gap = data.get("clip_gap") or [1, 1]
    return ClipBatches(
        pool, batch_size, int(data.get("crop_size", 128)), tuple(data.get("scale", (0.3, 1.0))),
        clip_frames=int(data.get("clip_frames", 3)), clip_gap=(int(gap[0]), int(gap[-1])),
        num_colours=int((cfg.get("model") or {}).get("colours", 16)),
        colour_drop=float(data.get("colour_drop", 0.7)), jitter=float(data.get("jitter", 0.1)),
        seed=seed, fit_seed=int(cfg.get("seed", 0)), fit_frames=int(data.get("colour_fit_frames", 64)),
    )
