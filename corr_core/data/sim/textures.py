"""Textures for the simulated scenes: procedural patterns and the bundled images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

TEXTURE_DIR = Path(__file__).resolve().parents[2] / "assets" / "textures"
PROCEDURAL = ("checker", "stripes", "noise", "gradient", "dots")


def _colours(rng: np.random.Generator, n: int) -> np.ndarray:
    hsv = np.stack([rng.integers(0, 180, n), rng.integers(120, 256, n), rng.integers(90, 256, n)], axis=1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def procedural(kind: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A ``(size, size, 3) uint8`` RGB pattern of the given kind with random colours and scale."""
    c = _colours(rng, 3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "checker":
        n = int(rng.integers(2, 7))
        t = ((np.floor(yy * n) + np.floor(xx * n)) % 2)[..., None]
        img = c[0] * t + c[1] * (1 - t)
    elif kind == "stripes":
        n, ang = int(rng.integers(2, 8)), rng.uniform(0, np.pi)
        t = (np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * n * 2 * np.pi) > 0)[..., None]
        img = c[0] * t + c[1] * (1 - t)
    elif kind == "noise":
        small = rng.random((int(rng.integers(3, 9)),) * 2 + (1,)).astype(np.float32)
        t = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)[..., None].clip(0, 1)
        img = c[0] * t + c[1] * (1 - t)
    elif kind == "gradient":
        t = (xx * rng.uniform(0.3, 1) + yy * rng.uniform(0.3, 1))[..., None] / 2
        img = c[0] * t + c[2] * (1 - t)
    elif kind == "dots":
        n = int(rng.integers(2, 6))
        d = (np.hypot((xx * n) % 1 - 0.5, (yy * n) % 1 - 0.5) < 0.3)[..., None]
        img = c[0] * d + c[1] * (1 - d)
    else:
        raise ValueError(f"unknown procedural texture {kind!r}; known: {PROCEDURAL}")
    return np.clip(img, 0, 255).astype(np.uint8)


def bundled_names() -> list[str]:
    """Names of the bundled texture images (without suffix)."""
    return sorted(p.stem for p in TEXTURE_DIR.glob("*.png"))


def bundled(name: str, rng: np.random.Generator) -> np.ndarray:
    """A bundled texture image, randomly flipped/rotated, ``(64, 64, 3) uint8`` RGB."""
    img = cv2.cvtColor(cv2.imread(str(TEXTURE_DIR / f"{name}.png"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    img = np.rot90(img, int(rng.integers(4)))
    return np.ascontiguousarray(img[:, ::-1] if rng.random() < 0.5 else img)


def random_texture(rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """``(description, image)``: a bundled image with probability 1/3, else a procedural pattern."""
    names = bundled_names()
    if names and rng.random() < 1 / 3:
        name = names[int(rng.integers(len(names)))]
        return f"image:{name}", bundled(name, rng)
    kind = PROCEDURAL[int(rng.integers(len(PROCEDURAL)))]
    return f"procedural:{kind}", procedural(kind, rng)


def png_bytes(img: np.ndarray) -> bytes:
    """Encodes an RGB image as PNG bytes (for MuJoCo's in-memory assets)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()
