"""Registry of feature backbones: small builder functions keyed by architecture name.

A checkpoint stores its architecture name; :func:`build_backbone` rebuilds exactly that network.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from corr_core.errors import ConfigError
from corr_core.models.backbones import ResNetDense

BACKBONES: dict[str, Callable[[], nn.Module]] = {}


def register_backbone(name: str) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Decorator that adds a builder to :data:`BACKBONES` under ``name``."""

    def wrap(fn: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} registered twice")
        BACKBONES[name] = fn
        return fn

    return wrap


@register_backbone("resnet18_s8")
def resnet18_s8() -> ResNetDense:
    """ResNet-18 up to ``res4`` (layer3) with its stride set to 1: stride 8, 256 channels.

    The propagation backbone of CRW and SFC (appendix 0.A.2); also what FC trains here on CPU.
    """
    return ResNetDense(depth=18, strides=(2, 1, 2), last_stage=3)


@register_backbone("resnet18_fc")
def resnet18_fc() -> ResNetDense:
    """ResNet-18 with ``res3`` and ``res4`` strides set to 1 (SFC appendix 0.A.1): stride 8, 512 ch."""
    return ResNetDense(depth=18, strides=(1, 1, 2), last_stage=4)


@register_backbone("resnet50_s8")
def resnet50_s8() -> ResNetDense:
    """ResNet-50 up to layer3 at stride 8 (the semantic backbone size used by SFC's fusion)."""
    return ResNetDense(depth=50, strides=(2, 1, 2), last_stage=3)


#: SFC's fused networks (seed 004, eq. 7): registered name -> (semantic backbone, fine-grained
#: backbone). One checkpoint holds both branches and lambda; it loads and exports as one network.
SFC_FUSIONS: dict[str, tuple[str, str]] = {
    "sfc_resnet18_s8": ("resnet18_s8", "resnet18_s8"),  # the CPU recipes: two ResNet-18s at stride 8
    "sfc_resnet50_s8": ("resnet50_s8", "resnet18_fc"),  # the paper: MoCo ResNet-50 + FC ResNet-18
}


def _fused_builder(semantic: str, fine_grained: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from corr_core.models.fusion import FusedFeatures

        return FusedFeatures(build_backbone(semantic), build_backbone(fine_grained), lam=1.75)

    build.__doc__ = f"SFC's fused features (eq. 7): semantic {semantic} + fine-grained {fine_grained}, lambda 1.75."
    return build


for _name, (_semantic, _fine) in SFC_FUSIONS.items():
    register_backbone(_name)(_fused_builder(_semantic, _fine))


def build_backbone(name: str) -> nn.Module:
    """Builds a registered backbone.

    Raises:
        ConfigError: for an unknown name (the message lists the known ones).
    """
    try:
        return BACKBONES[name]()
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}") from None
