"""MER's Motion Enhancement Engine (seed 002, Sec. 3.2): flow fusion before the encoder, the
Value Extraction Network after it.

The paper's equations are not in the text we have, only their descriptions; this is our reading of
them, stated where each part is built:

* **Channel fusion (eq. 5)**: ``I' = I + alpha * P(O)``: the frame ``I`` and its optical flow ``O``
  (2 channels) fused by a learnable ``1x1`` projection ``P`` (no bias) and a learnable weight
  ``alpha``, before the encoder. Without flow (``O = 0``: at test time, in the tracker and in an
  exported graph, which take RGB frames only) the fusion is the identity, so the feature network
  used downstream is the RGB encoder itself; flow only shapes what it learns.
* **Value map (eqs. 6-8)**: the frames' feature maps are cut into ``window x window`` windows; each
  cell of a target window is compared with the cells of the same window in every reference frame
  (cosine), its best match kept; a window's score is the mean over its cells, and its best score
  over the references, ``m``, gives ``V = clip((m - beta) / (1 - beta), 0, 1)`` (``beta``: the
  paper's hyper-parameter in [0, 1), 0.6 in its Sec. 4.5). ``V`` is high where the target shows
  what the references showed there (the regions the tracked objects are likely in).
* **Embedding and projections (eqs. 9-12)**: ``E = phi_E(F_t + phi_V(V)) + s * P`` (target), and
  ``K = phi_K(F_r) + s * P`` for every reference frame, with ``P`` an absolute (sinusoidal)
  positional encoding; the reconstruction affinity is ``<E, K>`` (cosine, over a temperature).
  ``phi_E``/``phi_K`` start as the identity, ``phi_V`` and ``s`` at zero, so training starts from
  plain feature matching (what the tracker does at test time).
* **DropKey** (Li et al., CVPR 2023, MER's [21]): during training each key is dropped from each
  query's softmax with probability ``drop_key`` (never all of a query's keys).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from corr_core.errors import ConfigError


class FlowFusion(nn.Module):
    """``x + alpha * P(flow)`` (eq. 5): ``x`` ``(B, 3, H, W)`` RGB in [0, 1], ``flow`` ``(B, 2, H, W)``
    normalised flow or None (the identity).

    Args:
        alpha_init: the starting weight of the flow.
    """

    def __init__(self, alpha_init: float = 0.5) -> None:
        super().__init__()
        self.proj = nn.Conv2d(2, 3, 1, bias=False)
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        if flow is None:
            return x
        return x + self.alpha * self.proj(flow)


def grid_coords(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(h*w, 2)`` float ``(y, x)`` cell centres in [0, 1], row-major."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gy.reshape(-1), gx.reshape(-1)], dim=-1)


def positional_encoding(coords: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal encoding of ``(..., 2)`` coordinates in [0, 1] into ``(..., dim)`` (zero-padded
    when ``dim`` is not a multiple of 4); frequencies from pi to 64 pi."""
    nf = max(1, dim // 4)
    freqs = math.pi * torch.pow(64.0, torch.linspace(0, 1, nf, device=coords.device))
    ang = coords[..., :, None] * freqs  # (..., 2, nf)
    pe = torch.cat([ang.sin(), ang.cos()], dim=-1).flatten(-2)  # (..., 4 nf)
    return F.pad(pe, (0, dim - pe.shape[-1]))[..., :dim]


def _identity_conv(channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(channels, channels, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
        conv.bias.zero_()
    return conv


class ValueExtractionNetwork(nn.Module):
    """The Value Extraction Network: value map, value embedding, projections, DropKey.

    Args:
        channels: feature channels ``C``.
        window: side of the windows of the value map, in feature cells.
        beta: the value threshold in [0, 1).
        drop_key: probability of dropping a key during training.
    """

    def __init__(self, channels: int, window: int = 4, beta: float = 0.6, drop_key: float = 0.1) -> None:
        super().__init__()
        if window < 1 or not 0 <= beta < 1 or not 0 <= drop_key < 1:
            raise ConfigError(f"value network: window must be >= 1, beta in [0, 1), drop_key in [0, 1); got "
                              f"{window}, {beta}, {drop_key}")
        self.window, self.beta, self.drop_key = int(window), float(beta), float(drop_key)
        self.phi_v = nn.Conv2d(1, channels, 1)
        nn.init.zeros_(self.phi_v.weight)
        nn.init.zeros_(self.phi_v.bias)
        self.phi_e = _identity_conv(channels)
        self.phi_k = _identity_conv(channels)
        self.pos_scale = nn.Parameter(torch.zeros(()))

    @torch.no_grad()
    def value_map(self, target: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
        """Eqs. 6-8: ``(B, h*w)`` values in [0, 1].

        Args:
            target: ``(B, C, h, w)`` unit feature vectors of the target frame.
            refs: ``(B, R, C, h, w)`` those of the reference frames.
        """
        b, c, h, w = target.shape
        r = refs.shape[1]
        k = self.window
        ph, pw = -h % k, -w % k
        t = F.pad(target, (0, pw, 0, ph))
        rf = F.pad(refs.flatten(0, 1), (0, pw, 0, ph))
        nh, nw = (h + ph) // k, (w + pw) // k

        def windows(x: torch.Tensor) -> torch.Tensor:  # (n, C, H, W) -> (n, nh*nw, k*k, C)
            x = x.view(x.shape[0], c, nh, k, nw, k).permute(0, 2, 4, 3, 5, 1)
            return x.reshape(x.shape[0], nh * nw, k * k, c)

        tw = windows(t)  # (B, W, k2, C)
        rw = windows(rf).view(b, r, nh * nw, k * k, c)
        valid = F.pad(torch.ones(h, w, device=target.device), (0, pw, 0, ph))
        valid = valid.view(nh, k, nw, k).permute(0, 2, 1, 3).reshape(nh * nw, k * k)  # 1 on real cells
        sims = torch.einsum("bwic,brwjc->brwij", tw, rw)
        sims = sims.masked_fill(valid[None, None, :, None, :] == 0, -1.0)
        best = sims.max(dim=-1).values  # (B, R, W, k2): best match of each target cell
        score = (best * valid).sum(-1) / valid.sum(-1).clamp(min=1)  # (B, R, W)
        m = score.max(dim=1).values  # (B, W)
        v = ((m - self.beta) / (1 - self.beta)).clamp(0, 1).view(b, 1, nh, nw)
        v = F.interpolate(v, scale_factor=k, mode="nearest")[:, :, :h, :w]
        return v.reshape(b, h * w)

    def _position(self, coords: torch.Tensor, channels: int) -> torch.Tensor:
        return self.pos_scale * positional_encoding(coords, channels)

    def query(self, target: torch.Tensor, value: torch.Tensor | None, coords: torch.Tensor | None) -> torch.Tensor:
        """Eq. 9: ``(B, N, C)`` unit query vectors ``E`` from ``(B, C, h, w)`` target features, their
        ``(B, N)`` values and ``(N, 2)`` cell coordinates (None: no value embedding / no position)."""
        b, c, h, w = target.shape
        e = self.phi_e(target if value is None else target + self.phi_v(value.view(b, 1, h, w)))
        e = e.flatten(2).transpose(1, 2)
        return F.normalize(e if coords is None else e + self._position(coords, c), dim=-1)

    def key(self, feats: torch.Tensor, coords: torch.Tensor | None) -> torch.Tensor:
        """Eqs. 10-11: ``(..., C)`` unit key vectors from ``(..., C)`` feature vectors at ``(..., 2)``
        coordinates (None: no position); a ``1x1`` projection applied per vector."""
        c = feats.shape[-1]
        k = F.linear(feats, self.phi_k.weight.view(c, c), self.phi_k.bias)
        return F.normalize(k if coords is None else k + self._position(coords, c), dim=-1)

    def drop_keys(self, shape: torch.Size, device: torch.device) -> torch.Tensor | None:
        """DropKey: a ``shape`` boolean mask of the keys kept (None when nothing is dropped)."""
        if not self.training or self.drop_key <= 0:
            return None
        return torch.rand(shape, device=device) >= self.drop_key
