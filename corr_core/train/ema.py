"""The exponential moving average of an online network into its target (BYOL, MoCo, FC, HVC).

Every method with a momentum target calls :func:`ema_update` from its ``after_step`` and
:func:`cosine_momentum` for BYOL's schedule, so the update is written once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
