"""SFC feature fusion (seed 004, Sec. 3.4, eq. 7) as one module, so an exported graph is one model.

SFC pretrains two networks separately, a semantic one (image-level, e.g. MoCo) and a fine-grained
one (FC), and fuses their dense features late, by channel concatenation of the per-position
L2-normalised maps with a weight on the fine-grained part:

    F = [L2Norm(F_s), lambda * L2Norm(F_f)]                                    (SFC eq. 7)

"F also needs to be re-normalized when it is employed in downstream tasks, like label
propagation": the output here is re-normalised, so its dot products are
``(<s_i, s_j> + lambda^2 <f_i, f_j>) / (1 + lambda^2)``. SFC Table 0.A.2 gives lambda = 1.75 on
DAVIS (1.0 on JHMDB and VIP); :class:`~corr_core.propagation.crw.PropagationConfig` carries it as
``fusion_lambda``.

When the two maps have different sizes (different strides), the coarser one is resized to the
finer grid (bilinear, half-pixel centres) before the normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from corr_core.errors import ConfigError, ShapeMismatchError


class FusedFeatures(nn.Module):
    """Semantic + fine-grained features fused as SFC eq. 7 (re-normalised).

    Args:
        semantic: maps ``(B, 3, H, W)`` RGB in [0, 1] to ``(B, Cs, hs, ws)`` features.
        fine_grained: maps the same input to ``(B, Cf, hf, wf)`` features.
        lam: weight ``lambda >= 0`` of the fine-grained part (0: the semantic features alone).

    Input ``(B, 3, H, W)`` float RGB in [0, 1]; output ``(B, Cs + Cf, h, w)`` unit vectors on the
    finer of the two grids (the one with more cells). Attributes ``stride`` (the finer one) and
    ``out_channels`` (the sum) are None unless both models have them.
    """

    def __init__(self, semantic: nn.Module, fine_grained: nn.Module, lam: float = 1.75) -> None:
        super().__init__()
        self.semantic = semantic
        self.fine_grained = fine_grained
        self.register_buffer("lam", torch.tensor(0.0))
        self.set_lambda(lam)
        strides = [getattr(m, "stride", None) for m in (semantic, fine_grained)]
        channels = [getattr(m, "out_channels", None) for m in (semantic, fine_grained)]
        self.stride: int | None = min(strides) if all(isinstance(s, int) for s in strides) else None
        self.out_channels: int | None = sum(channels) if all(isinstance(c, int) for c in channels) else None

    def set_lambda(self, lam: float) -> None:
        """Sets ``lambda`` (a buffer, so it is part of an exported graph).

        Raises:
            ConfigError: for a negative or non-finite value.
        """
        lam = float(lam)
        if not lam >= 0 or lam == float("inf"):
            raise ConfigError(f"FusedFeatures: lambda must be a finite number >= 0, got {lam!r}")
        self.lam.fill_(lam)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fs = self.semantic(x)
        ff = self.fine_grained(x)
        if fs.dim() != 4 or ff.dim() != 4 or fs.shape[0] != ff.shape[0]:
            raise ShapeMismatchError(
                f"FusedFeatures: both models must return (B, C, h, w) maps for the same batch, got "
                f"{tuple(fs.shape)} and {tuple(ff.shape)}"
            )
        if fs.shape[-2:] != ff.shape[-2:]:
            if fs.shape[-2] * fs.shape[-1] < ff.shape[-2] * ff.shape[-1]:
                fs = F.interpolate(fs, size=ff.shape[-2:], mode="bilinear", align_corners=False)
            else:
                ff = F.interpolate(ff, size=fs.shape[-2:], mode="bilinear", align_corners=False)
        fused = torch.cat([F.normalize(fs, dim=1), self.lam.to(ff.dtype) * F.normalize(ff, dim=1)], dim=1)
        return F.normalize(fused, dim=1)
