"""The tracker's object manager: which ids are tracked, and label maps between frame and grid.

:class:`ObjectManager` owns the ids (one soft-label channel per id, background 0 first) and the
output dtype; it validates masks, turns them into one-hot maps on the feature grid and turns
propagated soft labels back into an id map at frame size. How labels go between the frame and the
grid is :attr:`PropagationConfig.label_resize <corr_core.propagation.config.PropagationConfig>`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from corr_core.errors import CorrError, DataError, ShapeMismatchError
from corr_core.propagation.config import PropagationConfig
from corr_core.propagation.crw import downsample_labels, upsample_labels

_CHANNEL_CHUNK = 16  # channels resized at a time (bounds full-resolution buffers)


def grid_pixels(cfg: PropagationConfig, grid: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """Pixel extent the feature grid stands for: the frame (stretch) or ``grid * stride``."""
    if cfg.label_resize == "stretch":
        return size
    cell = cfg.feature_stride / float(cfg.input_scale)  # frame pixels per cell
    return round(grid[0] * cell), round(grid[1] * cell)


def fit(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crops ``(K, H, W)`` maps to ``size`` or pads them by repeating the last row/column."""
    maps = maps[:, : size[0], : size[1]]
    pad_h, pad_w = size[0] - maps.shape[1], size[1] - maps.shape[2]
    if pad_h or pad_w:
        maps = F.pad(maps[None], (0, pad_w, 0, pad_h), mode="replicate")[0]
    return maps


def onehot_on_grid(channel: torch.Tensor, k: int, grid: tuple[int, int], cfg: PropagationConfig) -> torch.Tensor:
    """``(K, h, w)`` float32 one-hot maps of an ``(H, W)`` channel-index map at feature resolution."""
    extent = grid_pixels(cfg, grid, (int(channel.shape[0]), int(channel.shape[1])))
    out = []
    for start in range(0, k, _CHANNEL_CHUNK):
        ks = torch.arange(start, min(start + _CHANNEL_CHUNK, k), device=channel.device)
        onehot = fit((channel[None] == ks[:, None, None]).float(), extent)
        out.append(downsample_labels(onehot, grid))
    return torch.cat(out)


def argmax_on_frame(soft: torch.Tensor, size: tuple[int, int], cfg: PropagationConfig) -> torch.Tensor:
    """Upsamples ``(K, h, w)`` soft labels to ``size`` and arg-maxes them: ``(H, W)`` int64 channels.

    A running maximum over channel chunks (strictly greater replaces: the first maximum wins on
    ties, as numpy's argmax), several times faster on CPU than ``argmax`` over dim 0.
    """
    best_val = best_idx = None
    extent = grid_pixels(cfg, (int(soft.shape[1]), int(soft.shape[2])), size)
    for start in range(0, soft.shape[0], _CHANNEL_CHUNK):
        up = fit(upsample_labels(soft[start : start + _CHANNEL_CHUNK], extent), size)
        for offset in range(up.shape[0]):
            val = up[offset]
            if best_val is None:
                best_val = val.clone()
                best_idx = torch.zeros(val.shape, dtype=torch.int64, device=val.device)
                continue
            better = val > best_val
            best_val = torch.maximum(best_val, val)
            best_idx.masked_fill_(better, start + offset)
    return best_idx


def merge_labels(tracked: np.ndarray, given: np.ndarray) -> np.ndarray | None:
    """``tracked`` labels with the objects of ``given`` put in: each id of ``given`` loses its
    tracked pixels and takes its given ones where ``tracked`` holds background or that id; the other
    tracked objects keep every pixel they hold. ``(H, W)`` in the wider of the two dtypes, or None
    when nothing changes (``given`` is empty, or its ids already hold exactly those pixels).
    """
    ids = np.unique(given)
    ids = ids[ids != 0]
    if not len(ids):
        return None
    dtype = np.promote_types(tracked.dtype, given.dtype)
    own = np.isin(tracked, ids)
    out = tracked.astype(dtype, copy=True)
    out[own] = 0
    free = out == 0
    out[free] = given[free]
    return None if np.array_equal(out, tracked) else out


class ObjectManager:
    """Ids of the tracked objects and the dtype the label maps come back in.

    Ids accumulate over re-anchors (an id absent from new masks keeps its channel but is no longer
    predicted). The output dtype is the first masks' (``uint16`` for bool masks), widened when
    later masks need more (a ``uint16`` mask after a ``uint8`` one: the outputs become ``uint16``).
    """

    def __init__(self) -> None:
        self.ids: np.ndarray | None = None  # sorted channel ids, int64; 0 (background) included
        self.out_dtype: np.dtype | None = None

    @property
    def object_ids(self) -> tuple[int, ...]:
        """Ids of the tracked objects (background 0 excluded), ascending."""
        return () if self.ids is None else tuple(int(i) for i in self.ids if i != 0)

    @property
    def label_ids(self) -> tuple[int, ...]:
        """Id of each soft-label channel, background 0 first."""
        return () if self.ids is None else tuple(int(i) for i in self.ids)

    @staticmethod
    def validate(masks: object, size: tuple[int, int]) -> np.ndarray:
        """Checks an ``(H, W)`` integer (or bool) id map for a frame of ``size``; bool becomes uint16.

        Raises:
            ShapeMismatchError: not 2-D, or not the frame's size. DataError: not integer, or negative.
        """
        if not isinstance(masks, np.ndarray) or masks.ndim != 2:
            shape = getattr(masks, "shape", type(masks).__name__)
            raise ShapeMismatchError(f"Tracker: masks must be an (H, W) integer array, got {shape}")
        if (int(masks.shape[0]), int(masks.shape[1])) != size:
            raise ShapeMismatchError(
                f"Tracker: masks are {masks.shape[0]}x{masks.shape[1]} but the frame is "
                f"{size[0]}x{size[1]} (HxW)"
            )
        if masks.dtype == np.bool_:
            masks = masks.astype(np.uint16)
        if not np.issubdtype(masks.dtype, np.integer):
            raise DataError(f"Tracker: masks must hold integer ids, got dtype {masks.dtype}")
        if masks.size and int(masks.min()) < 0:
            raise DataError(f"Tracker: mask ids must be >= 0, got {int(masks.min())}")
        return masks

    def anchor(self, masks: np.ndarray, grid: tuple[int, int], cfg: PropagationConfig,
               device: torch.device) -> torch.Tensor:
        """Adds the ids of validated ``masks``; returns their ``(K, h, w)`` one-hot maps on ``grid``."""
        present = np.unique(masks).astype(np.int64)
        known = np.zeros(1, np.int64) if self.ids is None else self.ids
        self.ids = np.union1d(np.union1d(known, present), np.zeros(1, np.int64))
        dtype = np.dtype(masks.dtype)
        self.out_dtype = dtype if self.out_dtype is None else np.promote_types(self.out_dtype, dtype)
        channel = torch.from_numpy(np.searchsorted(self.ids, masks.astype(np.int64))).to(device)
        return onehot_on_grid(channel, len(self.ids), grid, cfg)

    def decode(self, soft: torch.Tensor, size: tuple[int, int], cfg: PropagationConfig) -> np.ndarray:
        """``(K, h, w)`` soft labels -> ``(H, W)`` id map in the output dtype."""
        if self.ids is None:
            raise CorrError("Tracker: no objects yet (the first frame needs masks)")
        best = argmax_on_frame(soft, size, cfg)
        return self.ids[best.cpu().numpy()].astype(self.out_dtype)

    def cast(self, masks: np.ndarray) -> np.ndarray:
        """``masks`` (as given) in the output dtype, copied."""
        return masks.astype(self.out_dtype, copy=True)
