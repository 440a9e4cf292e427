"""Regenerates the bundled texture images in ``corr_core/assets/textures/``.

They are centre crops of sample images that scikit-image ships (BSD-3-Clause licensed package data;
see the README in that folder), downscaled to 64x64. Run once by a maintainer:

    python -m corr_core.data.sim.make_textures
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[2] / "assets" / "textures"
# (skimage.data name, (y0, x0, size) crop box in the original image)
CROPS = {
    "astronaut": (0, 0, 256),
    "coffee": (100, 150, 250),
    "chelsea": (30, 100, 200),
    "rocket": (150, 100, 200),
    "immunohistochemistry": (0, 0, 256),
    "hubble_deep_field": (200, 200, 256),
}


def main() -> None:
    import skimage.data

    OUT.mkdir(parents=True, exist_ok=True)
    for name, (y0, x0, s) in CROPS.items():
        img = np.asarray(getattr(skimage.data, name)())[..., :3]
        crop = img[y0 : y0 + s, x0 : x0 + s]
        small = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(OUT / f"{name}.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        print(OUT / f"{name}.png")


if __name__ == "__main__":
    main()
