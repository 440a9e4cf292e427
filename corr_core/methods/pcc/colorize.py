"""PCC stage 1: cross-view colourisation pretraining, as a method of the one trainer.

The network sees the source view in colour and the target view in grey and predicts the target's
colours (seed 000, eq. 1, MSE in RGB). Pairs are two cameras at the same instant or one camera at
a time gap (:class:`~corr_core.methods.pcc.scenes.PairSampler`). Both views of a pair get the same
random colour change (channel permutation and hue rotation), so the colours of the target can only
be found by copying them from the corresponding places of the source — the correspondence that the
heatmaps of stage 2 read out — not recalled from what such a scene usually looks like.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from corr_core.errors import ConfigError
from corr_core.methods.pcc.loss_colour import ColourMSELoss
from corr_core.methods.pcc.model import build_pcc_model
from corr_core.methods.pcc.scenes import PairSampler, fit_size, read_rgb
from corr_core.train.data import RandomStream


def colour_jitter(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random channel permutation and hue rotation applied to every image of a pair."""
    perm = rng.permutation(3)
    shift = int(rng.integers(0, 180))
    out = []
    for img in images:
        hsv = cv2.cvtColor(np.ascontiguousarray(img[..., perm]), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + shift) % 180).astype(np.uint8)
        out.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
    return out


def hue_field(img: np.ndarray, rng: np.random.Generator, cells: tuple[int, int] = (4, 5)) -> np.ndarray:
    """``img`` with its hue turned by a smooth random field (a few cells of independent turns,
    upsampled bilinearly) and its saturation raised where it was low: colours that only the image
    itself, not what such scenes usually look like, can tell."""
    h, w = img.shape[:2]
    turn = cv2.resize(rng.uniform(0, 180, cells).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = np.mod(hsv[..., 0] + turn, 180.0)
    hsv[..., 1] = np.maximum(hsv[..., 1], 96.0)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def random_warp(size: tuple[int, int], rng: np.random.Generator, strength: float = 0.15) -> np.ndarray:
    """A random perspective transform (3x3) of an image of ``size`` (H, W): its corners moved by up
    to ``strength`` of the image size."""
    h, w = size
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners + rng.uniform(-strength, strength, (4, 2)).astype(np.float32) * np.float32([w, h])
    return cv2.getPerspectiveTransform(corners, moved)


def warp(img: np.ndarray, matrix: np.ndarray, nearest: bool = False) -> np.ndarray:
    """``img`` (an image, or a mask with ``nearest``) under ``matrix``; outside the image: 0."""
    h, w = img.shape[:2]
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    if img.dtype == np.bool_:
        return cv2.warpPerspective(img.astype(np.uint8), matrix, (w, h), flags=flags).astype(bool)
    return cv2.warpPerspective(img, matrix, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT)


def warped_pair(img: np.ndarray, rng: np.random.Generator, strength: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic pair with known correspondence: ``img`` recoloured by :func:`hue_field`, and the
    same recoloured image under :func:`random_warp` (corners moved by up to ``strength`` of the
    image size; outside the image: black). The target's colours can only be copied from where its
    pixels came from in the source."""
    src = hue_field(img, rng)
    return src, warp(src, random_warp(img.shape[:2], rng, strength))


def to_batch(images: list[np.ndarray]) -> torch.Tensor:
    """``(H, W, 3) uint8`` images -> ``(B, 3, H, W)`` float32 in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)


class ColourBatches(RandomStream):
    """Endless batches of pairs for colourisation: ``{"src", "tgt"}``, ``(B, 3, H, W)`` float in [0, 1].

    Args:
        sampler: draws the pairs.
        batch_size: pairs per batch.
        size: ``(H, W)``, multiples of 16 (frames are resized to cover it and randomly cropped).
        jitter: apply :func:`colour_jitter` to each pair.
        seed: random seed (crops, jitter).
        synthetic: share of pairs made from one frame by :func:`warped_pair` (known correspondence,
            colours unpredictable without it) instead of two views of a scene.
    """

    def __init__(self, sampler: PairSampler, batch_size: int, size: tuple[int, int], jitter: bool = True,
                 seed: int = 0, synthetic: float = 0.0) -> None:
        if batch_size < 1 or size[0] % 16 or size[1] % 16:
            raise ConfigError(f"PCC batches: batch_size >= 1 and a size of multiples of 16 needed, got "
                              f"{batch_size}, {list(size)}")
        if not 0.0 <= synthetic <= 1.0:
            raise ConfigError(f"PCC batches: synthetic must be a share in [0, 1], got {synthetic}")
        self.sampler, self.batch_size, self.size, self.jitter = sampler, int(batch_size), tuple(size), bool(jitter)
        self.synthetic = float(synthetic)
        self.rng = np.random.default_rng(seed)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def generators(self) -> dict[str, np.random.Generator]:
        """Crops and jitter; the pair sampler's draws."""
        return {"rng": self.rng, "pairs": self.sampler.rng}

    def __next__(self) -> dict[str, torch.Tensor]:
        src, tgt = [], []
        for _ in range(self.batch_size):
            pair = self.sampler.sample()
            a = fit_size(read_rgb(self.sampler.frame_path(pair.src)), self.size, self.rng)
            if self.synthetic and self.rng.random() < self.synthetic:
                a, b = warped_pair(a, self.rng)
            else:
                b = fit_size(read_rgb(self.sampler.frame_path(pair.tgt)), self.size, self.rng)
            if self.jitter:
                a, b = colour_jitter([a, b], self.rng)
            src.append(a)
            tgt.append(b)
        return {"src": to_batch(src), "tgt": to_batch(tgt)}


def init_encoder(model: nn.Module, checkpoint: str | Path) -> None:
    """Starts PCC's ResNet encoder from a corr feature checkpoint (e.g. the shipped FC weights); an
    encoder that keeps only the first stages takes those stages' weights.

    Raises:
        CheckpointError: missing checkpoint, or one of another architecture.
    """
    from corr_core.errors import CheckpointError
    from corr_core.io.checkpoint import load_checkpoint

    net = getattr(model.encoder, "net", None)
    tensors, meta = load_checkpoint(checkpoint)
    if net is None or meta.get("arch") != getattr(model.encoder, "arch", None):
        raise CheckpointError(
            f"{checkpoint}: a {meta.get('arch')!r} checkpoint cannot initialise the PCC encoder "
            f"{getattr(model.encoder, 'arch', type(model.encoder).__name__)!r}"
        )
    wanted = net.state_dict()
    state = {k[len("backbone."):]: v for k, v in tensors.items() if k[len("backbone."):] in wanted}
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise CheckpointError(f"{checkpoint}: holds no weights for {missing[:3]} of the PCC encoder")
    net.load_state_dict(state, strict=True)


class ColourizeMethod(nn.Module):
    """Colourisation pretraining for :class:`~corr_core.train.trainer.Trainer`.

    Args:
        arch: PCC architecture (:data:`~corr_core.methods.pcc.model.PCC_MODELS`).
        encoder_init: a corr checkpoint to start the encoder from (None: random).
        freeze_encoder: train the decoder and heads only.
        contrast_weight: weight of pixels that stand out from their surroundings in the loss
            (:class:`~corr_core.methods.pcc.loss_colour.ColourMSELoss`; 0: the paper's plain MSE).
    """

    name = "pcc_colorize"

    def __init__(self, arch: str = "pcc_resnet18_l2", encoder_init: str | None = None,
                 freeze_encoder: bool = False, contrast_weight: float = 0.0) -> None:
        super().__init__()
        self.arch = arch
        self.model = build_pcc_model(arch)
        if encoder_init:
            init_encoder(self.model, encoder_init)
        self.freeze_encoder = bool(freeze_encoder)
        if self.freeze_encoder:
            for p in self.model.encoder.parameters():
                p.requires_grad_(False)
        self.loss_fn = ColourMSELoss(contrast_weight)

    def train(self, mode: bool = True) -> ColourizeMethod:
        super().train(mode)
        if self.freeze_encoder:
            self.model.encoder.eval()  # frozen batch-norm statistics too
        return self

    def online_parameters(self):
        return (p for p in self.model.parameters() if p.requires_grad)

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """``batch``: ``src``/``tgt`` ``(B, 3, H, W)`` -> ``(loss, logs)``."""
        pred = self.model.colourize(batch["src"], batch["tgt"])
        loss = self.loss_fn(pred, batch["tgt"])
        return loss, {"loss": float(loss.detach())}

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.training_step(batch)

    def feature_model(self) -> nn.Module:
        """The whole PCC network (what the next stages load)."""
        return self.model
