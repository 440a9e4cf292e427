"""The tracker's memory manager: the long-term and short-term context frames of one stream.

:class:`ContextMemory` holds two :class:`~corr_core.propagation.memory.FrameMemory`:

* long-term: the annotated frame (slot 0, always kept) and, with ``cfg.long_term_every = N > 0``,
  every N-th later frame with its predicted soft labels, up to ``cfg.long_term_size`` frames (the
  oldest other frame makes room); matched within ``cfg.long_term_radius`` (MER, MAST);
* short-term: a ring of the last ``cfg.context`` frames (CRW's ``m``), matched within
  ``cfg.radius``; with ``cfg.pad_context`` it starts as copies of the annotated frame (CRW).

Both are allocated when a stream is anchored (reusing the previous buffers when they fit), so
memory never grows with the length of the stream.
"""

from __future__ import annotations

import numpy as np
import torch

from corr_core.propagation.config import PropagationConfig
from corr_core.propagation.crw import propagate_memories
from corr_core.propagation.memory import FrameMemory


class ContextMemory:
    """Long- and short-term context of one stream (see the module docstring)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forgets every frame (buffers are released)."""
        self.long: FrameMemory | None = None  # slot 0: the annotated frame
        self.long_frames: list[int] = []  # stream index of the frame in each long-term slot
        self.short: FrameMemory | None = None  # ring buffer of the last cfg.context frames
        self.short_frames: list[int] = []
        self._short_next = 0  # slot the next short-term frame overwrites once the ring is full
        self.anchor_frame = 0

    @property
    def anchored(self) -> bool:
        """Whether an annotated frame is held."""
        return self.long is not None

    @property
    def frames(self) -> int:
        """Frames held: long-term (the annotated one, ...) + short-term (<= ``cfg.context``)."""
        return sum(mem.count for mem in (self.long, self.short) if mem is not None)

    @property
    def nbytes(self) -> int:
        """Bytes allocated for the held frames (features and soft labels, all slots)."""
        return sum(mem.nbytes for mem in (self.long, self.short) if mem is not None)

    def anchor(self, feat: torch.Tensor, labels: torch.Tensor, frame: int, cfg: PropagationConfig) -> None:
        """Makes ``(feat, labels)`` (``(C, h, w)``, ``(K, h, w)``) the annotated frame ``frame``:
        fresh long-term and short-term memories sized by ``cfg.long_term_size`` and ``cfg.context``."""
        self.anchor_frame = frame
        k = int(labels.shape[0])
        self.long = self._new_memory(self.long, cfg.long_term_size, feat, k)
        self.long.write(0, feat, labels)
        self.long_frames = [frame]
        self.short, self.short_frames, self._short_next = None, [], 0
        if cfg.context > 0:
            self.short = self._new_memory(self.short, cfg.context, feat, k)
            if cfg.pad_context:
                for slot in range(cfg.context):
                    self.short.write(slot, feat, labels)
                self.short_frames = [frame] * cfg.context

    def propagate(self, feat: torch.Tensor, frame: int, cfg: PropagationConfig) -> torch.Tensor:
        """Soft labels ``(K, h, w)`` float32 of frame ``frame`` from the memories; it is then remembered."""
        soft = propagate_memories(feat, self.long, self.short, cfg).float()
        self._remember(feat, soft, frame, cfg)
        return soft

    @staticmethod
    def _new_memory(old: FrameMemory | None, capacity: int, feat: torch.Tensor, num_labels: int) -> FrameMemory:
        """An empty memory for frames like ``feat``, reusing ``old``'s buffers when they fit."""
        c, h, w = (int(d) for d in feat.shape)
        if (
            old is not None
            and old.capacity == capacity
            and old.channels == c
            and old.size == (h, w)
            and old.keys.dtype == feat.dtype
            and old.labels.shape[1] == num_labels
        ):
            old.count = 0
            return old
        return FrameMemory(capacity, c, (h, w), num_labels, dtype=feat.dtype, device=feat.device)

    def _remember(self, feat: torch.Tensor, soft: torch.Tensor, frame: int, cfg: PropagationConfig) -> None:
        """Stores a predicted frame in the short-term ring and, every N-th frame, the long-term set."""
        short = self.short
        if short is not None:
            if short.count < short.capacity:
                slot = short.count
                self.short_frames.append(frame)
            else:
                slot = self._short_next
                self.short_frames[slot] = frame
                self._short_next = (slot + 1) % short.capacity
            short.write(slot, feat, soft)
        every, long = cfg.long_term_every, self.long
        if every > 0 and long.capacity > 1 and (frame - self.anchor_frame) % every == 0:
            if long.count < long.capacity:
                slot = long.count
                self.long_frames.append(frame)
            else:  # the oldest frame other than the annotated one (slot 0) makes room
                slot = 1 + int(np.argmin(self.long_frames[1:]))
                self.long_frames[slot] = frame
            long.write(slot, feat, soft)
