"""Regenerates the bundled texture images in ``corr_core/assets/textures/``.

They are crops of sample images that scikit-image ships with its package (see the README in that
folder for the origin and licence of each), resized with area averaging:

* object textures, 64x64 RGB: ``<name>.png``;
* surface textures (table, floor, walls), 128x128: ``surface_<name>.png``; the grey ones are
  tinted with a random colour at run time.

Run by a maintainer when the list changes (the PNGs are committed; nothing runs this at run time):

    python -m corr_core.data.sim.make_textures
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[2] / "assets" / "textures"

# skimage.data name -> (y0, x0, side) of the square crop in the original image.
OBJECT_CROPS = {
    "astronaut": (0, 0, 256),
    "coffee": (100, 150, 250),
    "chelsea": (30, 100, 200),
    "rocket": (150, 100, 200),
    "immunohistochemistry": (0, 0, 256),
    "hubble_deep_field": (200, 200, 256),
}
# output name -> (skimage.data name, (y0, x0, side))
SURFACE_CROPS = {
    "wood": ("coffee", (20, 475, 120)),
    "brick": ("brick", (0, 0, 512)),
    "gravel": ("gravel", (0, 0, 384)),
    "grass": ("grass", (0, 0, 384)),
}


def _crop(name: str, box: tuple[int, int, int], side: int) -> np.ndarray:
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 3:
        img = img[..., :3]
    y0, x0, s = box
    crop = np.ascontiguousarray(img[y0 : y0 + s, x0 : x0 + s])
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)


def _save(path: Path, img: np.ndarray) -> None:
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(path), img)
    print(path)


def main() -> None:
    """Writes every object and surface texture into :data:`OUT`."""
    OUT.mkdir(parents=True, exist_ok=True)
    for name, box in OBJECT_CROPS.items():
        _save(OUT / f"{name}.png", _crop(name, box, 64))
    for out_name, (name, box) in SURFACE_CROPS.items():
        _save(OUT / f"surface_{out_name}.png", _crop(name, box, 128))


if __name__ == "__main__":
    main()
