"""Textures for the simulated scenes: procedural patterns drawn with numpy and the bundled images.

Every function takes the episode's ``numpy`` generator, so textures are reproducible from the seed.
Images are ``(S, S, 3) uint8`` RGB; :func:`png_bytes` turns them into MuJoCo in-memory assets.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

TEXTURE_DIR = Path(__file__).resolve().parents[2] / "assets" / "textures"
PROCEDURAL = ("checker", "stripes", "noise", "gradient", "dots")
SURFACE_PREFIX = "surface_"


def random_colours(
    rng: np.random.Generator, n: int, sat: tuple[int, int] = (110, 256), val: tuple[int, int] = (110, 256)
) -> np.ndarray:
    """``n`` random saturated colours, ``(n, 3) float32`` RGB in 0..255."""
    hsv = np.stack([rng.integers(0, 180, n), rng.integers(*sat, n), rng.integers(*val, n)], axis=1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def _value_noise(rng: np.random.Generator, size: int, octaves: int = 3) -> np.ndarray:
    """Smooth noise in 0..1, ``(size, size) float32``: a few octaves of upsampled random grids."""
    acc = np.zeros((size, size), np.float32)
    cells = int(rng.integers(3, 7))
    weight, total = 1.0, 0.0
    for _ in range(octaves):
        grid = rng.random((cells, cells)).astype(np.float32)
        acc += weight * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        total += weight
        cells, weight = cells * 2, weight * 0.5
    acc /= total
    lo, hi = float(acc.min()), float(acc.max())
    return (acc - lo) / max(hi - lo, 1e-6)


def procedural(kind: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A ``(size, size, 3) uint8`` RGB pattern of the given kind with random colours and scale.

    Args:
        kind: one of :data:`PROCEDURAL`.
        rng: the episode's generator.
        size: side in pixels.

    Raises:
        ValueError: for an unknown kind.
    """
    c = random_colours(rng, 3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "checker":
        n = int(rng.integers(2, 7))
        t = ((np.floor(yy * n) + np.floor(xx * n)) % 2)[..., None]
    elif kind == "stripes":
        n, ang = int(rng.integers(2, 8)), float(rng.uniform(0, np.pi))
        phase = (xx * np.cos(ang) + yy * np.sin(ang)) * n
        t = ((phase % 1.0) < rng.uniform(0.3, 0.7))[..., None].astype(np.float32)
    elif kind == "noise":
        t = _value_noise(rng, size)[..., None]
    elif kind == "gradient":
        ang = float(rng.uniform(0, 2 * np.pi))
        t = (xx - 0.5) * np.cos(ang) + (yy - 0.5) * np.sin(ang)
        t = ((t - t.min()) / (t.max() - t.min()))[..., None]
    elif kind == "dots":
        n = int(rng.integers(2, 6))
        radius = float(rng.uniform(0.2, 0.4))
        t = (np.hypot((xx * n) % 1 - 0.5, (yy * n) % 1 - 0.5) < radius)[..., None].astype(np.float32)
    else:
        raise ValueError(f"unknown procedural texture {kind!r}; known: {PROCEDURAL}")
    img = c[0] * t + c[1] * (1 - t)
    # A little fine grain so that even flat regions carry some texture.
    img = img + rng.normal(0.0, 6.0, size=(size, size, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _load(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"bundled texture missing or unreadable: {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def bundled_names(surface: bool = False) -> list[str]:
    """Names (file stems) of the bundled object textures, or of the surface textures."""
    stems = sorted(p.stem for p in TEXTURE_DIR.glob("*.png"))
    return [s for s in stems if s.startswith(SURFACE_PREFIX) == surface]


def bundled(name: str, rng: np.random.Generator) -> np.ndarray:
    """A bundled image, randomly rotated by a multiple of 90 degrees and maybe mirrored."""
    img = np.rot90(_load(TEXTURE_DIR / f"{name}.png"), int(rng.integers(4)))
    return np.ascontiguousarray(img[:, ::-1] if rng.random() < 0.5 else img)


def _tint_if_grey(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    chroma = np.abs(img.astype(np.int16) - img.mean(axis=2, keepdims=True)).mean()
    if chroma > 4:  # already coloured
        return img
    colour = random_colours(rng, 1, sat=(60, 200), val=(170, 256))[0] / 255.0
    grey = img.astype(np.float32).mean(axis=2, keepdims=True)
    return np.clip(grey * colour * rng.uniform(0.9, 1.3), 0, 255).astype(np.uint8)


def random_object_texture(rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """``(description, 64x64 image)``: a bundled image with probability 1/3, else a procedural one."""
    names = bundled_names()
    if names and rng.random() < 1 / 3:
        name = names[int(rng.integers(len(names)))]
        return f"image:{name}", bundled(name, rng)
    kind = PROCEDURAL[int(rng.integers(len(PROCEDURAL)))]
    return f"procedural:{kind}", procedural(kind, rng)


def random_surface_texture(rng: np.random.Generator, size: int = 128) -> tuple[str, np.ndarray]:
    """``(description, image)`` for a table, floor or wall: a (tinted) bundled surface or a pattern."""
    names = bundled_names(surface=True)
    if names and rng.random() < 0.5:
        name = names[int(rng.integers(len(names)))]
        return f"image:{name}", _tint_if_grey(bundled(name, rng), rng)
    kind = ("checker", "stripes", "noise", "gradient")[int(rng.integers(4))]
    return f"procedural:{kind}", procedural(kind, rng, size)


def png_bytes(img: np.ndarray) -> bytes:
    """Encodes an ``(H, W, 3) uint8`` RGB image as PNG bytes (for MuJoCo's in-memory assets)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()
