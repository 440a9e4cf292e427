"""ResNet backbones with reduced strides for dense correspondence.

Normalisation (ImageNet mean/std) lives inside the model as buffers, so every consumer — the
trainer, the tracker, an exported ONNX graph — feeds plain RGB in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """``(x - mean) / std`` with mean/std as buffers (exported with the graph)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _set_stride(layer: nn.Sequential, stride: int) -> None:
    """Sets the stride of a torchvision ResNet stage (first block's conv and downsample)."""
    block = layer[0]
    conv = block.conv1 if isinstance(block, torchvision.models.resnet.BasicBlock) else block.conv2
    conv.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)


class ResNetDense(nn.Module):
    """A torchvision ResNet without pooling head, producing a dense feature map.

    Args:
        depth: 18 or 50.
        strides: strides of stages ``layer2..layer4`` (``layer1`` keeps stride 1 after the stem's 4).
        last_stage: the last stage kept (3 drops ``layer4``, as CRW/SFC do for propagation).

    Input: ``(B, 3, H, W)`` float RGB in [0, 1]. Output: ``(B, C, H/s, W/s)`` float features, where
    ``s = 4 * prod(strides of kept stages)`` (see :attr:`stride`) and ``C`` is :attr:`out_channels`.
    """

    def __init__(self, depth: int = 18, strides: Sequence[int] = (2, 1, 1), last_stage: int = 3) -> None:
        super().__init__()
        if depth not in (18, 50):
            raise ValueError(f"ResNet depth must be 18 or 50, got {depth}")
        if last_stage not in (3, 4):
            raise ValueError(f"last_stage must be 3 or 4, got {last_stage}")
        net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        for layer, s in zip((net.layer2, net.layer3, net.layer4), strides, strict=True):
            _set_stride(layer, s)
        self.normalize = Normalize()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        stages = [net.layer1, net.layer2, net.layer3] + ([net.layer4] if last_stage == 4 else [])
        self.stages = nn.Sequential(*stages)
        self.stride = 4
        for s in list(strides)[: last_stage - 1]:
            self.stride *= s
        widths = {18: (64, 128, 256, 512), 50: (256, 512, 1024, 2048)}[depth]
        self.out_channels = widths[last_stage - 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(self.normalize(x)))
