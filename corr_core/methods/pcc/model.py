"""The PCC network: one encoder E and one cross-view decoder D with three heads.

* colourisation (pretraining, PCC eq. 1): ``y = D(E(I1), E(gray(I2)))`` predicts the colour image
  ``I2`` from the colour source view and the grey target view;
* correspondence: ``D(E(I1) + embed(mask in I1), E(I2))`` predicts the mask of the same object in
  ``I2`` (the source mask is patchified and added to the source tokens) and whether the object is
  visible in ``I2`` at all (existence head). With ``colour_prior`` the target tokens also get the
  source object's colours back-projected into ``I2`` (:mod:`.colour_prior`), and so do the mask
  logits, both through zero-initialised layers.

Architectures are built by name from :data:`PCC_MODELS` (a checkpoint stores the name).
Inputs are float RGB in [0, 1], ``(B, 3, H, W)``, with H and W multiples of the encoder stride.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from corr_core.errors import ConfigError, ShapeMismatchError
from corr_core.methods.pcc.colour_prior import back_project
from corr_core.methods.pcc.decoder import CrossViewDecoder, init_weights
from corr_core.methods.pcc.encoder import build_encoder

LUMA = (0.299, 0.587, 0.114)
#: The colour and mask heads work at this fraction of the image size.
HEAD_STRIDE = 4


def to_gray(rgb: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB -> ``(B, 3, H, W)`` grey (Rec. 601 luma repeated over the channels)."""
    w = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(1, keepdim=True).expand(-1, 3, -1, -1)


def head_size(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` images or masks at the heads' resolution ``(H/4, W/4)`` (area average)."""
    return F.avg_pool2d(x, HEAD_STRIDE) if HEAD_STRIDE > 1 else x


class PixelHead(nn.Module):
    """Decoded tokens ``(B, D, h, w)``, encoder features ``(B, C, h', w')`` of the target and a
    guide image ``(B, G, H', W')`` -> ``(B, out, H', W')``.

    Tokens and features are projected, upsampled bilinearly to the guide's size and refined by two
    3x3 convolutions that also see the guide (the grey target for colours, the target RGB for
    masks). The network runs its heads at a quarter of the image size (:data:`HEAD_STRIDE`):
    full-resolution convolutions would cost more than the rest of the network.
    """

    def __init__(self, dim: int, feat_channels: int, guide_channels: int, out_channels: int, width: int = 32) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, width, 1)
        self.skip = nn.Conv2d(feat_channels, width, 1)
        self.refine = nn.Sequential(
            nn.Conv2d(2 * width + guide_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, out_channels, 3, padding=1),
        )

    def forward(self, tokens: torch.Tensor, feat: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        size = guide.shape[-2:]
        x = F.interpolate(self.proj(tokens), size=size, mode="bilinear", align_corners=False)
        f = F.interpolate(self.skip(feat), size=size, mode="bilinear", align_corners=False)
        return self.refine(torch.cat([x, f, guide], dim=1))


class ExistenceHead(nn.Module):
    """Is the source object visible in the target? A learned query pools the decoded target
    tokens; with the strongest coarse mask logits it gives one logit per pair."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.query, std=0.02)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim + 2, dim), nn.GELU(), nn.Linear(dim, 1))

    def forward(self, tokens: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """``tokens`` ``(B, N, D)``, ``coarse`` ``(B, N)`` mask logits -> ``(B,)`` logits."""
        pooled, _ = self.attn(self.query.expand(tokens.shape[0], -1, -1), tokens, tokens)
        stats = torch.stack([coarse.amax(1), torch.logsumexp(coarse, 1) - torch.log(torch.tensor(
            float(coarse.shape[1]), device=coarse.device))], dim=1)
        return self.mlp(torch.cat([pooled[:, 0], stats], dim=1))[:, 0]


class PCCNet(nn.Module):
    """Encoder + cross-view decoder + colour, mask and existence heads (module docstring).

    Args:
        encoder: a :mod:`~corr_core.methods.pcc.encoder` name.
        dim, depth, src_depth, heads: decoder width, cross blocks, source self-attention blocks, heads.
        token_stride: stride of the decoder's token grid; encoder features are average-pooled to it
            when it is coarser than the encoder's (attention cost falls with the square of the
            token count; the heads still see the encoder's finer features).
        name: the architecture name stored in checkpoints.
        colour_prior: feed the back-projected source colours to the correspondence path.
        base_arch: the architecture this one extends (the same weights plus the colour prior's
            layers): its checkpoints (a colouriser) can start this one.
    """

    #: the layers ``colour_prior`` adds (absent from a ``base_arch`` checkpoint)
    PRIOR_LAYERS = ("prior_embed.", "prior_logit.")

    def __init__(self, encoder: str = "resnet18_s8", dim: int = 192, depth: int = 4, src_depth: int = 2,
                 heads: int = 6, token_stride: int | None = None, name: str = "", colour_prior: bool = False,
                 base_arch: str | None = None) -> None:
        super().__init__()
        self.arch = name or f"pcc_{encoder}"
        self.encoder = build_encoder(encoder)
        enc_stride, channels = int(self.encoder.stride), int(self.encoder.out_channels)
        self.stride = int(token_stride or enc_stride)
        if self.stride % enc_stride:
            raise ConfigError(f"PCCNet: token_stride {self.stride} is not a multiple of the encoder stride {enc_stride}")
        self.pool = self.stride // enc_stride
        self.decoder = CrossViewDecoder(channels, dim, depth, src_depth, heads)
        self.mask_embed = nn.Conv2d(1, dim, kernel_size=self.stride, stride=self.stride)
        self.colour_head = PixelHead(dim, channels, 1, 3)
        self.mask_coarse = nn.Conv2d(dim, 1, 1)
        self.mask_head = PixelHead(dim + 1, channels, 3, 1)
        self.exist_head = ExistenceHead(dim)
        for mod in (self.decoder, self.exist_head):
            init_weights(mod)
        zero = [self.mask_embed]
        self.colour_prior, self.base_arch = bool(colour_prior), base_arch
        self.extension_layers = self.PRIOR_LAYERS if self.colour_prior else ()
        if self.colour_prior:
            # the prior arrives at the heads' resolution; one token covers stride / HEAD_STRIDE of it
            k = self.stride // HEAD_STRIDE
            self.prior_embed = nn.Conv2d(1, dim, kernel_size=k, stride=k)
            self.prior_logit = nn.Conv2d(1, 1, 3, padding=1)
            zero += [self.prior_embed, self.prior_logit]
        for mod in zero:
            nn.init.zeros_(mod.weight)
            nn.init.zeros_(mod.bias)

    # ------------------------------------------------------------------ pieces
    def check_size(self, x: torch.Tensor) -> None:
        """Raises ShapeMismatchError unless ``x`` is ``(B, 3, H, W)`` with H, W multiples of the stride."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ShapeMismatchError(f"PCCNet: expected (B, 3, H, W) images, got {tuple(x.shape)}")
        if x.shape[-2] % self.stride or x.shape[-1] % self.stride:
            raise ShapeMismatchError(
                f"PCCNet: image {x.shape[-2]}x{x.shape[-1]} is not a multiple of the stride {self.stride}"
            )

    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> encoder features ``(B, C, H/e, W/e)`` (``e``: the encoder's stride)."""
        self.check_size(rgb)
        return self.encoder(rgb)

    def tokens_grid(self, feat: torch.Tensor) -> torch.Tensor:
        """Encoder features pooled to the token grid ``(B, C, H/s, W/s)``."""
        return F.avg_pool2d(feat, self.pool) if self.pool > 1 else feat

    def source_tokens(self, feat: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Source tokens ``(B, N, D)`` from encoder features; ``mask`` ``(B, 1, H, W)`` float in
        [0, 1] is patchified and added."""
        feat = self.tokens_grid(feat)
        extra = None
        if mask is not None:
            emb = self.mask_embed(mask.to(feat.dtype))
            if emb.shape[-2:] != feat.shape[-2:]:
                raise ShapeMismatchError(f"PCCNet: mask grid {tuple(emb.shape[-2:])} != features {tuple(feat.shape[-2:])}")
            extra = emb.flatten(2).transpose(1, 2)
        return self.decoder.source(feat, extra)

    def decode(self, tgt_feat: torch.Tensor, src_tokens: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded target tokens as a map ``(B, D, h, w)`` (``tgt_feat``: encoder features;
        ``extra``: ``(B, D, h, w)`` added to the target tokens before decoding)."""
        tgt_feat = self.tokens_grid(tgt_feat)
        b, _, h, w = tgt_feat.shape
        tgt_tokens = self.decoder.target(tgt_feat)
        if extra is not None:
            tgt_tokens = tgt_tokens + extra.flatten(2).transpose(1, 2)
        x = self.decoder(tgt_tokens, src_tokens)
        return x.transpose(1, 2).reshape(b, -1, h, w)

    # ------------------------------------------------------------------ tasks
    def colourize(self, src_rgb: torch.Tensor, tgt_rgb_or_gray: torch.Tensor) -> torch.Tensor:
        """Predicts the colours of the target view at a quarter of its size: ``(B, 3, H/4, W/4)``
        in [0, 1] (the grey image is taken here; compare with :func:`head_size` targets)."""
        gray = to_gray(tgt_rgb_or_gray)
        return self.colourize_features(self.encode(src_rgb), self.encode(gray), gray)

    def colourize_features(self, src_feat: torch.Tensor, gray_feat: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
        """:meth:`colourize` from precomputed features (heatmaps re-use the grey target's)."""
        tokens = self.decode(gray_feat, self.source_tokens(src_feat))
        return torch.sigmoid(self.colour_head(tokens, gray_feat, head_size(gray[:, :1])))

    def correspond(self, src_rgb: torch.Tensor, src_mask: torch.Tensor, tgt_rgb: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits ``(B, 1, H/4, W/4)`` of the source object in the target (upsample them for
        a full-size mask), and existence logits ``(B,)``."""
        return self.correspond_features(self.encode(src_rgb), src_mask, self.encode(tgt_rgb), tgt_rgb, src_rgb)

    def correspond_features(self, src_feat: torch.Tensor, src_mask: torch.Tensor, tgt_feat: torch.Tensor,
                            tgt_rgb: torch.Tensor, src_rgb: torch.Tensor | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`correspond` from encoder features (several masks of one image share them: pass
        ``src_feat``/``tgt_feat``/``tgt_rgb``/``src_rgb`` expanded to the batch of masks).
        ``src_rgb`` is needed by networks with a colour prior only.

        Raises:
            ConfigError: a colour-prior network without ``src_rgb``.
        """
        tgt_small = head_size(tgt_rgb)
        extra = prior = None
        if self.colour_prior:
            if src_rgb is None:
                raise ConfigError(f"{self.arch}: the colour prior needs the source images (src_rgb)")
            prior = back_project(head_size(src_rgb), head_size(src_mask.to(src_rgb.dtype)), tgt_small)
            extra = self.prior_embed(prior)
        tokens = self.decode(tgt_feat, self.source_tokens(src_feat, src_mask), extra)
        coarse = self.mask_coarse(tokens)
        logits = self.mask_head(torch.cat([tokens, coarse], dim=1), tgt_feat, tgt_small)
        if prior is not None:
            logits = logits + self.prior_logit(prior)
        exist = self.exist_head(tokens.flatten(2).transpose(1, 2), coarse.flatten(1))
        return logits, exist


PCC_MODELS: dict[str, Callable[[], PCCNet]] = {}


def register_pcc_model(name: str) -> Callable[[Callable[..., PCCNet]], Callable[..., PCCNet]]:
    """Decorator adding a PCC architecture builder under ``name``."""

    def wrap(fn: Callable[..., PCCNet]) -> Callable[..., PCCNet]:
        if name in PCC_MODELS:
            raise ValueError(f"PCC model {name!r} registered twice")
        PCC_MODELS[name] = fn
        return fn

    return wrap


@register_pcc_model("pcc_resnet18_l2")
def pcc_resnet18_l2() -> PCCNet:
    """The small CPU configuration: corr's ResNet-18 at stride 8 up to ``layer2`` (128 channels;
    the heads see it at stride 8), tokens at stride 16, decoder width 192, 4 cross blocks after 2
    source self-attention blocks."""
    return PCCNet("resnet18_s8_l2", dim=192, depth=4, src_depth=2, heads=6, token_stride=16, name="pcc_resnet18_l2")


@register_pcc_model("pcc_resnet18_l2_prior")
def pcc_resnet18_l2_prior() -> PCCNet:
    """``pcc_resnet18_l2`` with the colour prior (:mod:`.colour_prior`): the CPU recipe's
    correspondence model. Starts from a ``pcc_resnet18_l2`` colouriser."""
    return PCCNet("resnet18_s8_l2", dim=192, depth=4, src_depth=2, heads=6, token_stride=16,
                  name="pcc_resnet18_l2_prior", colour_prior=True, base_arch="pcc_resnet18_l2")


@register_pcc_model("pcc_vit_b16")
def pcc_vit_b16() -> PCCNet:
    """The paper's scale: ViT-B/16 encoder, decoder width 512, 8 blocks (CroCo's decoder)."""
    return PCCNet("vit_b16", dim=512, depth=8, src_depth=0, heads=16, name="pcc_vit_b16")


@register_pcc_model("pcc_tiny")
def pcc_tiny() -> PCCNet:
    """A tiny network for tests (three-convolution encoder, width 32, one block of each kind)."""
    return PCCNet("tiny_conv_s8", dim=32, depth=1, src_depth=1, heads=2, token_stride=16, name="pcc_tiny")


@register_pcc_model("pcc_tiny_prior")
def pcc_tiny_prior() -> PCCNet:
    """``pcc_tiny`` with the colour prior, for tests."""
    return PCCNet("tiny_conv_s8", dim=32, depth=1, src_depth=1, heads=2, token_stride=16, name="pcc_tiny_prior",
                  colour_prior=True, base_arch="pcc_tiny")


def build_pcc_model(name: str, **kwargs: Any) -> PCCNet:
    """Builds a registered PCC architecture.

    Raises:
        ConfigError: unknown name.
    """
    if name not in PCC_MODELS:
        raise ConfigError(f"unknown PCC model {name!r}; known: {sorted(PCC_MODELS)}")
    return PCC_MODELS[name](**kwargs)
