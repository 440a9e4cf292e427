"""A colour prior for the correspondence model: histogram back-projection of the source object.

Where in the target are the colours that, in the source view, mark the object rather than its
surroundings? For each colour bin ``c`` the source gives ``P(object | c) = h_obj(c) / h_all(c)``
(the object's share of the source pixels of that colour; Swain & Ballard's ratio histogram), and
every target pixel gets the value of its colour's bin: an ``(B, 1, h, w)`` map in [0, 1]. Colours
are binned by chromaticity (``r / (r + g + b)``, ``g / (r + g + b)``: unchanged by how bright the
light is) and coarse intensity, since the two views light an object differently.

The map carries no weights and is not learnt. :class:`~corr_core.methods.pcc.model.PCCNet` with
``colour_prior=True`` feeds it to the decoder's target tokens and to the mask logits through
zero-initialised layers: the network decides from the pseudo-labels how far to trust colour and
where context (the object's surroundings, look-alikes) must overrule it.
"""

from __future__ import annotations

import torch

#: chromaticity r, chromaticity g, intensity bins
BINS = (12, 12, 4)


def colour_codes(rgb: torch.Tensor, bins: tuple[int, int, int] = BINS) -> torch.Tensor:
    """``(B, 3, h, w)`` RGB in [0, 1] -> ``(B, h, w)`` long bin index in ``[0, prod(bins))``."""
    total = rgb.sum(1).clamp_min(1e-3)
    r, g = rgb[:, 0] / total, rgb[:, 1] / total
    i = rgb.mean(1)

    def q(x: torch.Tensor, n: int) -> torch.Tensor:
        return (x * n).long().clamp_(0, n - 1)

    return (q(r, bins[0]) * bins[1] + q(g, bins[1])) * bins[2] + q(i, bins[2])


def _histograms(codes: torch.Tensor, weights: torch.Tensor, nbins: int) -> torch.Tensor:
    """``(B, nbins)`` weighted histograms of ``codes`` ``(B, h, w)``."""
    b = codes.shape[0]
    offset = torch.arange(b, device=codes.device).view(b, 1, 1) * nbins
    flat = torch.bincount((codes + offset).flatten(), weights=weights.flatten().float(), minlength=b * nbins)
    return flat.view(b, nbins)


@torch.no_grad()
def back_project(src_rgb: torch.Tensor, src_mask: torch.Tensor, tgt_rgb: torch.Tensor,
                 bins: tuple[int, int, int] = BINS) -> torch.Tensor:
    """The colour prior (module docstring).

    Args:
        src_rgb: ``(B, 3, h, w)`` source images in [0, 1].
        src_mask: ``(B, 1, h, w)`` source object masks in [0, 1] (same size as ``src_rgb``).
        tgt_rgb: ``(B, 3, h', w')`` target images in [0, 1].

    Returns:
        ``(B, 1, h', w')`` float in [0, 1].
    """
    if src_mask.shape[-2:] != src_rgb.shape[-2:] or src_mask.shape[0] != src_rgb.shape[0]:
        raise ValueError(f"source mask {tuple(src_mask.shape)} does not fit the source images {tuple(src_rgb.shape)}")
    nbins = bins[0] * bins[1] * bins[2]
    codes = colour_codes(src_rgb.float(), bins)
    h_obj = _histograms(codes, src_mask[:, 0], nbins)
    h_all = _histograms(codes, torch.ones_like(src_mask[:, 0]), nbins)
    ratio = h_obj / h_all.clamp_min(1.0)
    tgt_codes = colour_codes(tgt_rgb.float(), bins)
    b, h, w = tgt_codes.shape
    return ratio.gather(1, tgt_codes.view(b, -1)).view(b, 1, h, w).clamp_(0.0, 1.0)
