"""The exponential moving average of an online network into its target (BYOL, MoCo, FC, HVC).

Every method with a momentum target derives from :class:`OnlineTarget` (the target copies, which
parameters the optimiser sees, the update, the copy after loading weights) and uses
:func:`cosine_momentum` for BYOL's schedule, so each is written once.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn


def cosine_momentum(base: float, step: int, total_steps: int) -> float:
    """BYOL's schedule: ``base`` at step 0 rising to 1 at ``total_steps`` along a half cosine."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * step / max(total_steps, 1)) + 1) / 2


@torch.no_grad()
def ema_update(pairs: Sequence[tuple[nn.Module, nn.Module]], momentum: float) -> None:
    """``target = momentum * target + (1 - momentum) * online`` for the parameters of each
    ``(online, target)`` module pair; buffers (BatchNorm statistics) are copied from the online one."""
    online = [p for o, _ in pairs for p in o.parameters()]
    target = [p for _, t in pairs for p in t.parameters()]
    torch._foreach_mul_(target, momentum)
    torch._foreach_add_(target, online, alpha=1.0 - momentum)
    for o, t in pairs:
        for tb, ob in zip(t.buffers(), o.buffers(), strict=True):
            tb.copy_(ob)


class OnlineTarget(nn.Module):
    """An online ``backbone`` and ``projector`` (and ``predictor``, or None) with a momentum copy of
    the first two, the target. A method builds the online modules, then calls :meth:`make_target`;
    its ``after_step`` calls :meth:`update_target` with its momentum. Attribute names are those of
    the checkpoints (``target_backbone``, ``target_projector``)."""

    backbone: nn.Module
    projector: nn.Module
    predictor: nn.Module | None

    def make_target(self) -> None:
        """The target: copies of the online backbone and projector that no gradient reaches."""
        self.target_backbone = copy.deepcopy(self.backbone)
        self.target_projector = copy.deepcopy(self.projector)
        for p in self.target_parameters():
            p.requires_grad_(False)

    def online_modules(self) -> list[nn.Module]:
        """What the optimiser trains (a method with more online heads extends it)."""
        return [m for m in (self.backbone, self.projector, self.predictor) if m is not None]

    def online_parameters(self) -> Iterator[nn.Parameter]:
        for mod in self.online_modules():
            yield from mod.parameters()

    def target_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.target_backbone.parameters()
        yield from self.target_projector.parameters()

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """``target = momentum * target + (1 - momentum) * online`` (:func:`ema_update`)."""
        ema_update([(self.backbone, self.target_backbone), (self.projector, self.target_projector)], momentum)

    @torch.no_grad()
    def sync_target(self) -> None:
        """Copies the online backbone and projector into the target (after loading weights)."""
        self.target_backbone.load_state_dict(self.backbone.state_dict())
        self.target_projector.load_state_dict(self.projector.state_dict())

    def feature_model(self) -> nn.Module:
        """The network used downstream: the online backbone."""
        return self.backbone
