"""SFC's training batches: FC's crop pairs and the semantic branch's strongly augmented views.

Both come from the same image pool (:func:`corr_core.train.data.build_pool`, FC's data). The FC
pairs are drawn exactly as FC's own batcher draws them (same seed, same generator), and the
semantic views from a generator of their own, so the fine-grained branch of an SFC run sees the
batches an FC run of the same recipe sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from corr_core.data.transforms import to_tensor
from corr_core.errors import ConfigError
from corr_core.methods.sfc.augment import StrongAugment
from corr_core.train.data import ImagePool, PairCropBatches, rng_state, set_rng_state


class ViewBatches:
    """Endless batches of FC crop pairs and/or semantic views.

    Yields dicts: with ``fc``, its keys (``view1``, ``view2``, ``box1``, ``box2``, see
    :class:`~corr_core.train.data.PairCropBatches`); with ``augment``, ``sem1``/``sem2``
    ``(B, 3, S, S) float32`` in [0, 1], two augmented views of each of ``B`` images.

    Args:
        pool: the images.
        batch_size: images per batch for the semantic views.
        fc: FC's pair batcher, or None.
        augment: the semantic views' augmentation, or None.
        seed: seed of the semantic views.
    """

    def __init__(self, pool: ImagePool, batch_size: int, fc: PairCropBatches | None,
                 augment: StrongAugment | None, seed: int = 0) -> None:
        if fc is None and augment is None:
            raise ConfigError("ViewBatches needs FC pairs, semantic views, or both")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.pool, self.batch_size, self.fc, self.augment = pool, batch_size, fc, augment
        self.rng = np.random.default_rng([int(seed), 4])  # its own stream: FC's pairs stay FC's

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def state_dict(self) -> dict[str, Any]:
        """Where both streams are (resume continues them exactly)."""
        return {"fc": None if self.fc is None else self.fc.state_dict(), "semantic": rng_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.fc is not None:
            self.fc.load_state_dict(state["fc"])
        set_rng_state(self.rng, state["semantic"])

    def __next__(self) -> dict[str, torch.Tensor]:
        batch = {} if self.fc is None else next(self.fc)
        if self.augment is not None:
            v1, v2 = [], []
            for _ in range(self.batch_size):
                img = self.pool.get(int(self.rng.integers(len(self.pool))))
                v1.append(self.augment(img, self.rng))
                v2.append(self.augment(img, self.rng))
            batch.update({"sem1": to_tensor(v1), "sem2": to_tensor(v2)})
        return batch


def _augment(views: dict[str, Any], crop_size: int, scale: Any) -> StrongAugment:
    return StrongAugment(size=int(views.get("crop_size", crop_size)),
                         scale=tuple(float(s) for s in views.get("scale", scale)),
                         jitter=float(views.get("jitter", 0.4)))


def sfc_batches(ctx: Any) -> ViewBatches:
    """The batches of the ``sfc`` method from a :class:`~corr_core.methods.BatchContext`: FC pairs,
    plus semantic views when the semantic branch is trained in the run (``model.semantic`` unset)."""
    from corr_core.train.data import build_pool

    pool = build_pool(ctx.data, cache_dir=ctx.cache_dir, render_sim=ctx.render)
    crop = int(ctx.data.get("crop_size", 128))
    fc = PairCropBatches(pool, ctx.batch_size, crop, tuple(ctx.data.get("scale", (0.08, 1.0))), seed=ctx.seed)
    trained = not (ctx.cfg.get("model") or {}).get("semantic")
    views = ctx.data.get("semantic_views") or {}
    augment = _augment(views, crop, (0.2, 1.0)) if trained else None
    return ViewBatches(pool, ctx.batch_size, fc, augment, seed=ctx.seed)


def semantic_batches(ctx: Any) -> ViewBatches:
    """The batches of the ``sfc_semantic`` method: semantic views of ``data.crop_size`` over ``data.scale``."""
    from corr_core.train.data import build_pool

    pool = build_pool(ctx.data, cache_dir=ctx.cache_dir, render_sim=ctx.render)
    augment = _augment({}, int(ctx.data.get("crop_size", 128)), ctx.data.get("scale", (0.2, 1.0)))
    return ViewBatches(pool, ctx.batch_size, None, augment, seed=ctx.seed)
