"""Image encoders E of PCC: a dense feature map ``(B, C, H/s, W/s)`` from ``(B, 3, H, W)`` RGB in [0, 1].

Two families, each with normalisation inside (so exported graphs take plain RGB):

* the project's ResNets (:mod:`corr_core.models`), e.g. ``resnet18_s8`` — the small CPU
  configuration, which may start from the shipped FC weights;
* ViTs from timm (``vit_b16``: ViT-B/16, the paper's encoder; ``vit_tiny_p8``), whose patch
  tokens are laid back on their grid (class/register tokens dropped).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from corr_core.errors import ConfigError
from corr_core.models.backbones import Normalize


class ResNetEncoder(nn.Module):
    """A registered corr backbone (``corr_core.models.BACKBONES``) as PCC encoder.

    Args:
        arch: backbone name (its weights can come from a corr checkpoint of that architecture).
        stages: keep only the first ``stages`` residual stages (None: all). ResNet-18 at stride 8
            up to ``layer2`` costs about a third of the whole stride-8 network.
    """

    def __init__(self, arch: str, stages: int | None = None) -> None:
        super().__init__()
        from corr_core.models import build_backbone

        self.arch = arch
        self.net = build_backbone(arch)
        self.stride = int(self.net.stride)
        self.out_channels = int(self.net.out_channels)
        if stages is not None and stages < len(self.net.stages):
            kept = list(self.net.stages)[:stages]
            self.net.stages = nn.Sequential(*kept)
            self.stride = 4 * int(math.prod(getattr(s[0].conv1, "stride", (1, 1))[0] for s in kept))
            self.out_channels = int(kept[-1][-1].conv2.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> ``(B, C, ceil(H/s), ceil(W/s))``."""
        return self.net(x)


class TimmViTEncoder(nn.Module):
    """A timm Vision Transformer (randomly initialised; no download) as PCC encoder.

    Args:
        model_name: timm model name, e.g. ``vit_base_patch16_224``.
        patch_size: override of the patch size (e.g. 8 for a finer grid).
    """

    def __init__(self, model_name: str, patch_size: int | None = None) -> None:
        super().__init__()
        import timm

        kwargs = {"patch_size": patch_size} if patch_size else {}
        self.vit = timm.create_model(model_name, pretrained=False, num_classes=0, dynamic_img_size=True, **kwargs)
        self.normalize = Normalize()
        self.stride = int(self.vit.patch_embed.patch_size[0])
        self.out_channels = int(self.vit.embed_dim)
        self.arch = model_name if not patch_size else f"{model_name}/p{patch_size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] (H, W multiples of the patch size) -> ``(B, C, H/p, W/p)``."""
        b, _, h, w = x.shape
        s = self.stride
        if h % s or w % s:
            raise ConfigError(f"ViT encoder: image {h}x{w} is not a multiple of the patch size {s}")
        tokens = self.vit.forward_features(self.normalize(x))[:, self.vit.num_prefix_tokens :]
        return tokens.transpose(1, 2).reshape(b, self.out_channels, h // s, w // s)


class TinyConvEncoder(nn.Module):
    """Three strided convolutions (stride 8, 32 channels): a few-thousand-weight encoder for tests."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.arch = "tiny_conv_s8"
        self.normalize = Normalize()
        layers: list[nn.Module] = []
        cin = 3
        for _ in range(3):
            layers += [nn.Conv2d(cin, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            cin = width
        self.net = nn.Sequential(*layers)
        self.stride, self.out_channels = 8, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


ENCODERS: dict[str, Callable[[], nn.Module]] = {
    "tiny_conv_s8": TinyConvEncoder,
    "resnet18_s8": lambda: ResNetEncoder("resnet18_s8"),
    "resnet18_s8_l2": lambda: ResNetEncoder("resnet18_s8", stages=2),
    "vit_b16": lambda: TimmViTEncoder("vit_base_patch16_224"),
    "vit_tiny_p8": lambda: TimmViTEncoder("vit_tiny_patch16_224", patch_size=8),
}


def build_encoder(name: str) -> nn.Module:
    """Builds an encoder of :data:`ENCODERS`.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    if name not in ENCODERS:
        raise ConfigError(f"unknown PCC encoder {name!r}; known: {sorted(ENCODERS)}")
    return ENCODERS[name]()
